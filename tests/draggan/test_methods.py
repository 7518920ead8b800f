"""The drag methods behind `draggan.methods.make_session`: they keep the drag step's device discipline, roll back,
and are chosen by config (`drag_method=...`) with their own checked options. That they edit the toy model's faces
(landmarks move to their targets) is tested on the landmark protocol, tests/eval/test_method_rows.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from draggan.drag import DragConfig, DragSession
from draggan.latents import initial_latent
from draggan.loading import load_generator
from draggan.methods import make_session
from draggan.methods.freedrag import FreeDragSession
from draggan.methods.stabledrag import StableDragSession

ROOT = Path(__file__).resolve().parents[2]
OPTIMISING = ("freedrag", "stabledrag")


@pytest.fixture(scope="module")
def toy():
    return load_generator("toy-faces-64", device="cpu")


def test_the_config_chooses_the_method_and_the_recommended_one_is_freedrag(toy):
    ws = initial_latent(toy, 0, 0.7)
    assert type(make_session(toy, ws, [(32, 40)], [(32, 44)])) is DragSession  # DragConfig(): the paper's
    assert type(DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig.preset("official"))) is DragSession
    for build in (DragSession, make_session):  # the library's default: FreeDrag (docs/evaluation.md)
        assert type(build(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig.for_generator(toy))) is FreeDragSession
    assert type(DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="stabledrag"))) is StableDragSession
    with pytest.raises(ValueError, match="tracker"):
        DragSession(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag"), tracker=lambda s, f: None)
    with pytest.raises(ValueError, match="expected one of"):
        make_session(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="dragdiffusion"))
    with pytest.raises(ValueError, match="no option d_maxx"):
        make_session(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag", method_options={"d_maxx": 2}))
    with pytest.raises(ValueError, match="positive"):
        make_session(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="freedrag", method_options={"d_max": -1}))
    with pytest.raises(ValueError, match="tracker"):
        make_session(toy, ws, [(32, 40)], [(32, 44)], config=DragConfig(method="stabledrag"),
                     tracker=lambda s, f: s.handles_rc)


@pytest.mark.parametrize("method", OPTIMISING)
def test_rollback_restores_the_methods_own_state(toy, method):
    """Templates / trackers are part of each snapshot: rolling back and stepping again repeats the same steps."""
    config = dataclass_config(toy, method)
    session = make_session(toy, initial_latent(toy, 3, 0.7), [(30, 38), (24, 26)], [(33, 43), (22, 27)], config=config)
    first = [session.step() for _ in range(8)]
    session.rollback(2)
    again = [session.step() for _ in range(5)]
    for a, b in zip(first[3:], again):
        assert a.handles == b.handles and a.distances == pytest.approx(b.distances)
        assert a.loss == pytest.approx(b.loss, rel=1e-4, abs=1e-7)


def dataclass_config(G, method: str) -> DragConfig:
    config = DragConfig.for_generator(G)
    config.method = method
    return config


def test_stabledrag_falls_back_to_the_first_features_when_unsure(toy):
    """Below tau the motion supervision's reference is the first image's features: with tau above any confidence
    the loss at the first step (current == first features) is the same, and it differs once the image changed."""
    ws = initial_latent(toy, 0, 0.7)
    losses = {}
    for tau in (0.0, 10.0):
        config = dataclass_config(toy, "stabledrag")
        config.method_options = {"tau": tau}
        s = make_session(toy, ws, [(32, 40)], [(32, 46)], config=config)
        losses[tau] = [s.step().loss for _ in range(6)]
        assert len(s.confidences) == 1
    assert losses[0.0][0] == pytest.approx(losses[10.0][0], rel=1e-5)
    assert losses[0.0][1:] != pytest.approx(losses[10.0][1:], rel=1e-3)


def test_freedrag_moves_its_virtual_handles_along_the_drag_line(toy):
    s = make_session(toy, initial_latent(toy, 0, 0.7), [(20, 40)], [(44, 40)], config=dataclass_config(toy, "freedrag"))
    assert isinstance(s, FreeDragSession)
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
    config = dataclass_config(toy, method)
    config.mask_loss = mask_loss
    ws = initial_latent(toy, 0, 0.7)
    losses = {}
    for m in (None, mask):
        s = make_session(toy, ws, [(32, 40)], [(32, 44)], mask=m, config=config)
        losses[m is None] = [s.step().loss for _ in range(3)]
    assert all(np.isfinite(losses[False]))
    assert losses[False][1:] != pytest.approx(losses[True][1:], rel=1e-4)  # the hold term contributes once moved


@pytest.mark.parametrize("method", OPTIMISING)
def test_a_method_session_saved_to_disk_continues_as_if_never_saved(toy, tmp_path, method):
    """The method's own state (templates, tracker) is saved with each step: a loaded session continues, or rolls
    back and continues, exactly as the session in memory; one saved without it continues only as a new segment."""
    from draggan.session_io import LATENT_FILE, load_session, save_session

    s = make_session(toy, initial_latent(toy, 0, 0.7), [(32, 40), (24, 26)], [(32, 45), (22, 28)],
                     config=dataclass_config(toy, method))
    for _ in range(7):  # FreeDrag: past the end of a sub-motion (5 steps)
        s.step()
    save_session(s, tmp_path, generator="toy-faces-64")
    loaded = load_session(tmp_path, toy)
    assert type(loaded) is type(s) and torch.equal(loaded.ws, s.ws)
    for session in (s, loaded):
        session.rollback(4)
    for a, b in zip([s.step() for _ in range(4)], [loaded.step() for _ in range(4)]):
        assert a.handles == b.handles and a.loss == pytest.approx(b.loss, rel=1e-5, abs=1e-7)

    with np.load(tmp_path / LATENT_FILE) as z:  # as saved before the methods kept their state
        arrays = {k: z[k] for k in z.files if "_method_" not in k}
    np.savez(tmp_path / LATENT_FILE, **arrays)
    old = load_session(tmp_path, toy)
    with pytest.raises(RuntimeError, match="new segment"):
        old.step()
    old.rollback(-1)  # from the start, nothing is missing
    assert old.step().step == 0


# --- device discipline (the meta device stands in for a GPU; see test_device_discipline.py) ---------------------

@pytest.mark.parametrize("cls", [FreeDragSession, StableDragSession], ids=["freedrag", "stabledrag"])
def test_method_steps_stay_on_the_device_and_read_back_once(cls):
    from tests.draggan.test_device_discipline import DeviceWatch, _meta_generator

    G = _meta_generator()
    handles, targets = [(20.0, 30.0), (40.0, 22.0)], [(24.0, 36.0), (37.0, 20.0)]
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    method = "freedrag" if cls is FreeDragSession else "stabledrag"
    session = make_session(G, torch.zeros(1, G.num_ws, G.w_dim), handles, targets, mask=mask,
                           config=DragConfig(feature_block=3, method=method))
    syncs = []
    real = DragSession._to_host

    def to_host(packet):  # what a device would send back: not done, finite, the method's extras
        syncs.append(tuple(packet.shape))
        values = [0.0, 0.5, 1.0] + [5.0] * 2 + [v for x, y in handles for v in (y, x)]
        values += [1.0] * (packet.shape[0] - len(values))
        session.extra = values[len(values) - session._packet_extra:] if session._packet_extra else []
        if isinstance(session, FreeDragSession):
            session.motion_ends = session.motion_step >= session.options.steps_per_motion
        return values

    assert real is not None
    session._to_host = to_host
    watch = DeviceWatch()
    with watch:
        for _ in range(7):  # FreeDrag: a sub-motion ends after 5 steps, then the line search runs
            session.step()
    assert len(syncs) == 7
    assert not watch.mixed, f"operations mixing devices in the {method} step: {watch.mixed[:5]}"
    assert not watch.reads, f"reads of device values inside the {method} step: {watch.reads[:5]}"


# --- configs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["edit", "evaluate"])
def test_drag_method_group_composes_with_the_drag_presets(name):
    from hydra import compose, initialize_config_dir

    from draggan.configs import drag_config_from
    from eval.configs import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        assert drag_config_from(compose(name)).method == ("draggan" if name == "evaluate" else "freedrag")
        for method in ("draggan", "freedrag", "stabledrag", "uclt"):
            config = drag_config_from(compose(name, overrides=[f"drag_method={method}", "drag=official"]))
            assert config.method == method and config.lr == 1e-3  # the preset still applies
            config.validate()
            assert isinstance(config.method_options, dict)
        config = drag_config_from(compose(name, overrides=["drag_method=freedrag", "drag.method_options.l_expected=0.3"]))
        assert config.method_options["l_expected"] == 0.3 and config.method_options["d_max"] == 3.0
        config = drag_config_from(compose(name, overrides=["drag_method=stabledrag", "drag.method_options.tau=0.5"]))
        assert config.method_options["tau"] == 0.5
        config = drag_config_from(compose(name, overrides=["drag_method=uclt", "drag.method_options.weights=t.st"]))
        assert config.method_options == {"weights": "t.st"}  # what the missing-weights error tells users to give


# --- the latent transformer (UserControllableLT) -------------------------------------------------------------

def test_the_latent_transformer_trains_saves_and_edits_in_one_pass(toy, tmp_path):
    from draggan.methods.configs import UCLTTrainConfig
    from draggan.methods.uclt import LatentTransformerSession, load_transformer, train_latent_transformer

    weights = tmp_path / "uclt.safetensors"
    cfg = UCLTTrainConfig(out=str(weights), batch=4, iterations=3, width=32, layers=1, heads=2, max_points=3,
                          max_minutes=None, log_every=1)
    card = train_latent_transformer(toy, cfg, generator_name="toy-faces-64", progress=False)
    assert card["iterations"] == 3 and weights.is_file() and len(card["log"]) == 3
    model, meta = load_transformer(weights)
    assert meta["generator"] == "toy-faces-64" and model.rows == 6
    config = dataclasses.replace(DragConfig.for_generator(toy), method="uclt", method_options={"weights": str(weights)})
    ws = initial_latent(toy, 0, 0.7)
    session = make_session(toy, ws, [(32, 40)], [(32, 44)], config=config)
    assert isinstance(session, LatentTransformerSession)
    result = session.run()
    assert len(result.history) == 1 and result.done  # one pass
    changed = (result.ws - ws).abs().amax(dim=2)[0]
    assert changed[:6].max() > 0 and changed[6:].max() == 0  # only the layout rows change
    with pytest.raises(FileNotFoundError, match="train_uclt"):
        make_session(toy, ws, [(32, 40)], [(32, 44)],
                     config=dataclasses.replace(config, method_options={"weights": str(tmp_path / "none.safetensors")}))
    with pytest.raises(ValueError, match="no option"):
        make_session(toy, ws, [(32, 40)], [(32, 44)], config=dataclasses.replace(config, method_options={"w": 1}))
