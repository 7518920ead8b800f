"""The drag methods behind one contract: chosen by name (or `module:Class`), registered in one place, each keeping
the drag step's device discipline, rolling back, saved and resumed, and each capture-safe step replaying exactly
as a graph. That they edit the toy model's faces (landmarks move to their targets) is tested on the landmark
protocol, tests/eval/test_method_rows.py."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from draggan.latents import initial_latent
from draggan.loading import load_generator
from draggan.methods import (
    DragMethod,
    StepOutput,
    available,
    get_method,
    register_method,
)
from draggan.methods.draggan import DragGAN
from draggan.methods.freedrag import FreeDrag
from draggan.methods.stabledrag import StableDrag
from draggan.session import DragSession
from draggan.settings import DragConfig

ROOT = Path(__file__).resolve().parents[2]
OPTIMISING = ("freedrag", "stabledrag")


@pytest.fixture(scope="module")
def toy():
    return load_generator("toy-faces-64", device="cpu")


def dataclass_config(G, method: str) -> DragConfig:
    """The recommended settings for `G` with `method`, or the method's official preset for 'method-official'."""
    if method.endswith("-official"):
        return DragConfig.preset("official", generator=G, method=method.removesuffix("-official"))
    return DragConfig.for_generator(G).replace(method=method)


def test_the_shipped_methods_register_themselves_and_the_config_chooses_one(toy):
    assert set(available()) >= {"draggan", "freedrag", "stabledrag", "uclt"}
    assert get_method("draggan") is DragGAN and get_method("freedrag").name == "freedrag"
    ws = initial_latent(toy, 0, 0.7)
    assert type(DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig()).method) is DragGAN  # the paper's
    assert type(DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig.preset("official")).method) is DragGAN
    # the library's default, with a config and without one: FreeDrag with the generator's settings
    for session in (DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig.for_generator(toy)),
                    DragSession(toy, ws, [(32, 40)], [(32, 44)])):
        assert type(session.method) is FreeDrag
        assert session.config == DragConfig.for_generator(toy).adapted_to(toy)[0]
    assert type(DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="stabledrag")).method) is StableDrag
    with pytest.raises(ValueError, match="tracker"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag"), tracker=lambda s: None)
    with pytest.raises(ValueError, match="unknown drag method 'dragdiffusion' .*expected one of draggan, freedrag"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="dragdiffusion"))
    with pytest.raises(ValueError, match="no option d_maxx"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag", method_options={"d_maxx": 2}))
    with pytest.raises(ValueError, match="positive"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag", method_options={"d_max": -1}))
    with pytest.raises(ValueError, match="has no options"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="draggan", method_options={"x": 1}))


def test_a_method_subclassed_and_registered_elsewhere_follows_draggan_exactly(toy):
    """The issue's check: a subclass of get_method('draggan') registered under its own name runs DragGAN's
    trajectory step for step, from the paper's preset with only the method replaced."""
    Nudge = type("Nudge", (get_method("draggan"),), {})
    register_method("nudge-test", Nudge)
    assert get_method("nudge-test") is Nudge and Nudge.name == "nudge-test" and DragGAN.name == "draggan"
    register_method("nudge-test", Nudge)  # the same class again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_method("nudge-test", type("Other", (DragGAN,), {}))
    with pytest.raises(TypeError, match="subclass"):
        register_method("not-a-method", object)
    ws = initial_latent(toy, 0, 0.7)
    paper = DragConfig.preset("paper", generator=toy)
    runs = {}
    for method in ("draggan", "nudge-test"):
        s = DragSession(toy, ws, handles=[(32, 40)], targets=[(32, 46)], config=dataclasses.replace(paper, method=method))
        runs[method] = ([(st.handles, st.loss) for st in (s.step() for _ in range(6))], s.ws.detach())
    assert type(s.method) is Nudge
    assert runs["draggan"][0] == runs["nudge-test"][0] and torch.equal(runs["draggan"][1], runs["nudge-test"][1])


NUDGE_FILE = '''
    from draggan.methods import get_method


    class Nudge(get_method("draggan")):
        """DragGAN, under another name."""
'''


def test_a_method_is_loaded_from_the_working_directory_by_module_and_class(toy, tmp_path, monkeypatch):
    (tmp_path / "nudge_plugin.py").write_text(textwrap.dedent(NUDGE_FILE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "nudge_plugin", raising=False)
    cls = get_method("nudge_plugin:Nudge")
    assert issubclass(cls, DragGAN) and cls.name == "nudge_plugin:Nudge"
    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40)], [(32, 44)],
                    config=DragConfig.preset("paper", method="nudge_plugin:Nudge"))
    assert type(s.method) is cls and s.step().loss > 0
    with pytest.raises(ValueError, match="only registered methods"):
        get_method("nudge_plugin:Nudge", allow_import=False)
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        get_method("no_such_module:Nudge")
    with pytest.raises(ValueError, match="has no 'Missing'"):
        get_method("nudge_plugin:Missing")
    with pytest.raises(ValueError, match="not a subclass"):
        get_method("textwrap:dedent")


@pytest.mark.parametrize("method", OPTIMISING)
def test_rollback_restores_the_methods_own_state(toy, method):
    """Templates / trackers are part of each snapshot: rolling back and stepping again repeats the same steps."""
    config = dataclass_config(toy, method)
    session = DragSession(toy, initial_latent(toy, 3, 0.7), [(30, 38), (24, 26)], [(33, 43), (22, 27)], config=config)
    first = [session.step() for _ in range(8)]
    session.rollback(2)
    again = [session.step() for _ in range(5)]
    for a, b in zip(first[3:], again):
        assert a.handles == b.handles and a.distances == b.distances and a.loss == b.loss


def test_stabledrag_falls_back_to_the_first_features_when_unsure(toy):
    """Below tau the motion supervision's reference is the first image's features: with tau above any confidence
    the loss at the first step (current == first features) is the same, and it differs once the image changed.
    Each step reports the confidences by name."""
    ws = initial_latent(toy, 0, 0.7)
    losses = {}
    for tau in (0.0, 10.0):
        config = dataclass_config(toy, "stabledrag").replace(method_options={"tau": tau})
        s = DragSession(toy, ws, [(32, 40)], [(32, 46)], config=config)
        states = [s.step() for _ in range(6)]
        losses[tau] = [st.loss for st in states]
        assert all(len(st.extras["confidence"]) == 1 for st in states) and states[0].extras["confidence"] == [1.0]
    assert losses[0.0][0] == pytest.approx(losses[10.0][0], rel=1e-5)
    assert losses[0.0][1:] != pytest.approx(losses[10.0][1:], rel=1e-3)


def test_freedrag_moves_its_virtual_handles_along_the_drag_line(toy):
    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(20, 40)], [(44, 40)], config=dataclass_config(toy, "freedrag"))
    assert isinstance(s.method, FreeDrag)
    for _ in range(12):
        state = s.step()
        x, y = state.handles[0]
        assert y == pytest.approx(40, abs=1e-4) and 20 - 1e-4 <= x <= 44 + 1e-4  # on the segment, never tracked off it
    assert state.distances[0] < 24


@pytest.mark.parametrize("mask_loss", ["l1", "l2"])
@pytest.mark.parametrize("method", OPTIMISING)
def test_a_method_holds_the_features_outside_its_mask(toy, method, mask_loss):
    """Every method adds the session's mask term, with either hold term (the squared one needs the first features'
    RMS, which the methods once did not keep: a masked FreeDrag or StableDrag drag failed at its first step)."""
    mask = np.zeros((64, 64), bool)
    mask[30:50, 22:42] = True
    config = dataclass_config(toy, method).replace(mask_loss=mask_loss)
    ws = initial_latent(toy, 0, 0.7)
    losses = {}
    for m in (None, mask):
        s = DragSession(toy, ws, [(32, 40)], [(32, 44)], mask=m, config=config)
        losses[m is None] = [s.step().loss for _ in range(3)]
    assert all(np.isfinite(losses[False]))
    assert losses[False][1:] != pytest.approx(losses[True][1:], rel=1e-4)  # the hold term contributes once moved


@pytest.mark.parametrize("method", OPTIMISING)
def test_a_method_session_saved_to_disk_continues_as_if_never_saved(toy, tmp_path, method):
    """The method's own state (templates, tracker) is saved with each step: a loaded session continues, or rolls
    back and continues, exactly as the session in memory; one saved without it continues only as a new segment."""
    from draggan.session_io import LATENT_FILE, load_session, save_session

    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40), (24, 26)], [(32, 45), (22, 28)],
                    config=dataclass_config(toy, method))
    for _ in range(7):  # FreeDrag: past the end of a sub-motion (5 steps)
        s.step()
    save_session(s, tmp_path, generator="toy-faces-64")
    loaded = load_session(tmp_path, toy)
    assert type(loaded.method) is type(s.method) and torch.equal(loaded.ws, s.ws)
    for session in (s, loaded):
        session.rollback(4)
    for a, b in zip([s.step() for _ in range(4)], [loaded.step() for _ in range(4)]):
        assert a.handles == b.handles and a.loss == b.loss

    with np.load(tmp_path / LATENT_FILE) as z:  # as saved before the methods kept their state
        arrays = {k: z[k] for k in z.files if "_method_" not in k}
    np.savez(tmp_path / LATENT_FILE, **arrays)
    old = load_session(tmp_path, toy)
    with pytest.raises(RuntimeError, match="new segment"):
        old.step()
    old.rollback(-1)  # from the start, nothing is missing
    assert old.step().step == 0


# --- capture-safe steps (the CUDA graph, emulated on the CPU: tests/helpers/graph_replay.py) ---------------------

def _replayed(session: DragSession):
    """`session` with its step captured and replayed as a graph would be (on the CPU)."""
    from tests.helpers.graph_replay import ReplayEngine

    engine = ReplayEngine()
    session._capturable = lambda: True
    session._graph_engine = lambda: engine
    return engine


@pytest.mark.parametrize("method,masked", [("draggan", False), ("draggan", True), ("freedrag", False),
                                           ("freedrag", True), ("freedrag-official", False), ("freedrag-official", True),
                                           ("stabledrag", False), ("stabledrag", True)])
def test_a_capture_safe_step_replays_as_the_eager_step(toy, method, masked):
    """Every step after the first replays the operations recorded at one capture, on the tensors they read then
    (what a CUDA graph does): the trajectory is the eager one exactly, across FreeDrag's sub-motions (its template
    update and line search happen inside the replayed step), StableDrag's confidences and the mask term."""
    ws = initial_latent(toy, 2, 0.7)
    handles, targets = [(30, 38), (24, 26)], [(33, 44), (22, 28)]
    mask = None
    if masked:
        mask = np.zeros((64, 64), bool)
        mask[18:52, 16:46] = True
    config = dataclass_config(toy, method)
    if config.method == "freedrag":  # sub-motions of 3 steps; official: an l of the toy's feature scale, an early cut
        official = {"l_expected": 0.03, "late_cut": 2} if "late_cut" in config.method_options else {}
        config = config.replace(method_options={**config.method_options, "steps_per_motion": 3, **official})
    assert get_method(config.method).capture_safe
    eager = DragSession(toy, ws, handles, targets, mask=mask, config=config)
    graph = DragSession(toy, ws, handles, targets, mask=mask, config=config)
    engine = _replayed(graph)
    for step in range(14):
        a, b = eager.step(), graph.step()
        assert (a.handles, a.loss, a.distances, a.extras) == (b.handles, b.loss, b.distances, b.extras), f"step {step}"
        if a.done:
            break
    assert engine.captures == 1 and engine.replays == step and not engine.host_reads
    assert torch.equal(eager.ws, graph.ws)
    graph.rollback(3)  # a rollback copies the state into the tensors the graph reads: it keeps replaying right
    eager.rollback(3)
    for _ in range(3):
        a, b = eager.step(), graph.step()
        assert (a.handles, a.loss) == (b.handles, b.loss)
    assert engine.captures == 1


def test_a_step_that_is_not_capture_safe_does_not_replay_like_the_eager_one(toy):
    """The emulation can fail: a step that keeps a Python counter (as FreeDrag once did for its sub-motions) replays
    the operations of the step it was captured at, and its trajectory departs from the eager one."""

    class Counting(FreeDrag):
        def step(self, first):
            out = super().step(first)
            self.calls = getattr(self, "calls", 0) + 1
            scale = 1.0 if self.calls % 3 else 0.5  # Python state, frozen into the capture
            return dataclasses.replace(out, loss=out.loss * scale)

    register_method("counting-test", Counting)
    ws = initial_latent(toy, 2, 0.7)
    config = dataclass_config(toy, "counting-test")
    eager = DragSession(toy, ws, [(30, 38)], [(33, 44)], config=config)
    graph = DragSession(toy, ws, [(30, 38)], [(33, 44)], config=config)
    _replayed(graph)
    a = [eager.step().loss for _ in range(8)]
    b = [graph.step().loss for _ in range(8)]
    assert a[:2] == b[:2] and a != b


def test_a_step_that_cannot_be_captured_runs_eagerly_with_a_warning(toy, caplog):
    from tests.helpers.graph_replay import ReplayEngine

    class Broken(ReplayEngine):
        def capture(self, fn):
            raise RuntimeError("operation not permitted when stream is capturing")

    config = dataclass_config(toy, "freedrag")
    ws = initial_latent(toy, 2, 0.7)
    eager = DragSession(toy, ws, [(30, 38)], [(33, 44)], config=config)
    graph = DragSession(toy, ws, [(30, 38)], [(33, 44)], config=config)
    graph._capturable = lambda: not graph._graph_failed
    graph._graph_engine = lambda: Broken()
    with caplog.at_level("WARNING"):
        for _ in range(6):
            assert eager.step().handles == graph.step().handles
    assert "capture failed" in caplog.text and graph._graph_failed


# --- device discipline (the meta device stands in for a GPU; see test_device_discipline.py) ---------------------

@pytest.mark.parametrize("method", [*OPTIMISING, "freedrag-official"])
def test_method_steps_stay_on_the_device_and_read_back_once(method):
    from tests.draggan.test_device_discipline import DeviceWatch, _meta_generator

    G = _meta_generator()
    handles, targets = [(20.0, 30.0), (40.0, 22.0)], [(24.0, 36.0), (37.0, 20.0)]
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    official = method.endswith("-official")
    config = DragConfig.preset("official", method=method.removesuffix("-official")) if official else DragConfig(method=method)
    session = DragSession(G, torch.zeros(1, G.num_ws, G.w_dim), handles, targets, mask=mask,
                          config=config.replace(feature_block=3))
    syncs = []

    def to_host(packet):  # what a device would send back: not done, finite, the method's extras
        syncs.append(tuple(packet.shape))
        values = [0.0, 0.5, 1.0] + [5.0] * 2 + [v for x, y in handles for v in (y, x)]
        return values + [1.0] * (packet.shape[0] - len(values))

    session._to_host = to_host
    watch, per_step = DeviceWatch(), []
    with watch:
        for _ in range(7):  # FreeDrag: a sub-motion ends after 5 steps, then the line search runs
            before = watch.ops
            session.step()
            per_step.append(watch.ops - before)
    assert len(syncs) == 7
    assert not watch.mixed, f"operations mixing devices in the {method} step: {watch.mixed[:5]}"
    assert not watch.reads, f"reads of device values inside the {method} step: {watch.reads[:5]}"
    assert len(set(per_step[1:])) == 1, f"the steps after the first differ in their operations: {per_step}"


# --- configs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["edit", "evaluate"])
def test_drag_method_group_comes_from_the_registry_and_composes_with_the_presets(name):
    from hydra import compose, initialize_config_dir

    from draggan.configs import drag_config_from
    from eval.configs import register_configs

    register_configs()
    assert not (ROOT / "conf" / "drag_method").exists()  # no YAML copy of the methods' settings
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(name)
        default = drag_config_from(cfg, cfg.generator or "toy-faces-64")
        assert default == DragConfig.for_generator("toy-faces-64")  # the commands share the library's default
        for method in available():
            if ":" in method or method.endswith("-test"):
                continue
            config = drag_config_from(compose(name, overrides=[f"drag_method={method}", "drag=official"]))
            assert config.method == method and config == DragConfig.preset("official", method=method)  # the method's
            config.validate()
            assert isinstance(config.method_options, dict)
        config = drag_config_from(compose(name, overrides=["drag_method=freedrag", "drag=official"]))
        assert config.lr == 2e-3 and config.method_options["sampler"] == "raw"  # FreeDrag's own official preset
        assert drag_config_from(compose(name, overrides=["drag_method=draggan", "drag=official"])).lr == 1e-3
        config = drag_config_from(compose(name, overrides=["drag_method=freedrag", "drag.method_options.l_expected=0.3"]))
        assert config.method_options == {"l_expected": 0.3}  # the rest are FreeDragOptions' defaults
        config = drag_config_from(compose(name, overrides=["drag.method=stabledrag", "drag.method_options.tau=0.5"]))
        assert config.method == "stabledrag" and config.method_options["tau"] == 0.5
        config = drag_config_from(compose(name, overrides=["drag_method=uclt", "drag.method_options.weights=t.st"]))
        assert config.method_options == {"weights": "t.st"}  # what the missing-weights error tells users to give


# --- the latent transformer (UserControllableLT) -------------------------------------------------------------

def test_the_latent_transformer_trains_saves_and_edits_in_one_pass(toy, tmp_path):
    from draggan.methods.configs import UCLTTrainConfig
    from draggan.methods.latent_transformer import load_transformer
    from draggan.methods.uclt import LatentTransformerMethod
    from draggan.methods.uclt_training import train_latent_transformer

    weights = tmp_path / "uclt.safetensors"
    cfg = UCLTTrainConfig(out=str(weights), batch=4, iterations=3, width=32, layers=1, heads=2, max_points=3,
                          max_minutes=None, log_every=1)
    card = train_latent_transformer(toy, cfg, generator_name="toy-faces-64", progress=False)
    assert card["iterations"] == 3 and weights.is_file() and len(card["log"]) == 3
    model, meta = load_transformer(weights)
    assert meta["generator"] == "toy-faces-64" and model.rows == 6
    config = DragConfig.for_generator(toy).replace(method="uclt", method_options={"weights": str(weights)})
    ws = initial_latent(toy, 0, 0.7)
    session = DragSession(toy, ws, [(32, 40)], [(32, 44)], config=config)
    assert isinstance(session.method, LatentTransformerMethod)
    result = session.run()
    assert len(result.history) == 1 and result.done  # one pass
    changed = (result.ws - ws).abs().amax(dim=2)[0]
    assert changed[:6].max() > 0 and changed[6:].max() == 0  # only the layout rows change
    with pytest.raises(FileNotFoundError, match="train_uclt"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)],
                    config=dataclasses.replace(config, method_options={"weights": str(tmp_path / "none.safetensors")}))
    with pytest.raises(ValueError, match="no option"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=dataclasses.replace(config, method_options={"w": 1}))


# --- the README's "Add your own method" -----------------------------------------------------------------------

def test_a_method_written_from_the_contract_alone_drags(toy):
    """A complete method in a few lines, from the contract's docstring: motion supervision at handles that are never
    tracked (they advance one pixel a step along the line, FreeDrag-style, without templates)."""

    class Straight(DragMethod):
        state_names = ("position",)
        capture_safe = True

        def reset(self):
            self.position = None

        def step(self, first):
            from draggan.features import motion_supervision_loss

            edit = self.edit
            if first:
                self.position = edit.handles_rc.clone()
            feat = edit.features()
            gap = edit.targets_rc - self.position
            dist = torch.linalg.norm(gap, dim=1, keepdim=True)
            self.position.add_(gap * torch.clamp(1.0 / (dist + 1e-8), max=1.0))
            loss = motion_supervision_loss(feat, edit.size, self.position, edit.targets_rc, edit.r1, grid=edit.pixel_grid)
            return StepOutput(handles_rc=self.position.clone(), done=(dist <= edit.stop_px).all(), loss=loss,
                              features=feat)

    register_method("straight-test", Straight)
    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40)], [(32, 44)],
                    config=DragConfig.for_generator(toy).replace(method="straight-test"))
    result = s.run(max_steps=10)
    assert result.done and result.handles == [(32.0, 44.0)] and len(result.history) == 5
    assert s.history[0].loss > 0 and not torch.equal(result.ws, s.ws0)


def test_a_freedrag_state_saved_before_the_late_cut_continues(toy):
    """FreeDrag's state gained the late cut's counters (issue 25); a state saved without them loads, and a session
    without a late cut continues from it exactly as from the full state."""
    from draggan.methods.freedrag import LATE_CUT_STATE

    s = DragSession(toy, initial_latent(toy, 0, 0.7), [(32, 40)], [(32, 45)], config=dataclass_config(toy, "freedrag"))
    for _ in range(6):
        s.step()
    full = s.method.state()
    after = [s.step() for _ in range(4)]
    s.rollback(5)
    s.method.load_state({k: v for k, v in full.items() if k not in LATE_CUT_STATE})
    again = [s.step() for _ in range(4)]
    assert [(a.handles, a.loss) for a in after] == [(b.handles, b.loss) for b in again]
