"""The drag editor: sampling, tracking, motion supervision, masks, the official fixture, I/O, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from draggan.apps.reference import FullResolutionDrag
from draggan.features import (
    bilinear_at,
    motion_supervision_loss,
    resized_features_at,
    track_points,
)
from draggan.points import pixels_to_normalized
from draggan.session import DragSession
from draggan.session_io import load_session, save_session
from draggan.settings import DragConfig
from tests.conftest import STYLEGAN2, load_fixture_generator, tiny_generator


def _config(**kw) -> DragConfig:
    return DragConfig(**{"feature_block": 3, "lr": 0.02, **kw})


@pytest.fixture(params=["taps", "full map"])
def sampling_route(request, monkeypatch):
    """Both routes of draggan.features: taps at the positions needed (few handles), or the whole map resized once
    (more positions than a quarter of the image's pixels: many handles on a small generator)."""
    import draggan.features

    monkeypatch.setattr(draggan.features, "RESIZE_TAPS", 0 if request.param == "taps" else 10**9)
    return request.param


def test_sampling_returns_the_input_on_an_exact_grid(sampling_route):
    feat = torch.randn(1, 5, 9, 7)
    rows, cols = torch.meshgrid(torch.arange(9), torch.arange(7), indexing="ij")
    torch.testing.assert_close(resized_features_at(feat, (9, 7), rows, cols), feat[0], rtol=0, atol=0)
    torch.testing.assert_close(bilinear_at(feat, (9, 7), rows.float(), cols.float()), feat[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("feat_size,size", [((16, 16), (64, 64)), ((32, 16), (128, 64)), ((8, 8), (20, 20)),
                                            ((32, 32), (32, 32))])
def test_fast_sampling_equals_resize_then_sample(feat_size, size, sampling_route):
    torch.manual_seed(0)
    feat = torch.randn(1, 6, *feat_size)
    full = F.interpolate(feat, list(size), mode="bilinear")
    rows, cols = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    torch.testing.assert_close(resized_features_at(feat, size, rows, cols), full[0], rtol=0, atol=4e-6)  # float32 rounding
    ys = torch.rand(300) * (size[0] + 1) - 1  # includes positions past the border (zero padding)
    xs = torch.rand(300) * (size[1] + 1) - 1
    grid = torch.stack([pixels_to_normalized(xs, size[1]), pixels_to_normalized(ys, size[0])], -1)
    expected = F.grid_sample(full, grid[None, None], align_corners=True)[0, :, 0]
    torch.testing.assert_close(bilinear_at(feat, size, ys, xs), expected, rtol=0, atol=1e-5)


def test_half_precision_features_are_sampled_in_float32(sampling_route):
    feat = torch.randn(1, 3, 8, 8).half()  # the official fp16 policy's blocks on CUDA
    rows = torch.arange(4)
    assert resized_features_at(feat, (16, 16), rows, rows).dtype == torch.float32
    assert bilinear_at(feat, (16, 16), rows + 0.3, rows.float()).dtype == torch.float32


def test_many_handles_take_the_full_map_route_with_the_same_step():
    """17 handles at 64 px: tracking windows and motion disks need more taps than the image has pixels, so the
    map is resized once; loss, gradient and tracked handles equal the tap route's (up to float rounding)."""
    import draggan.features

    torch.manual_seed(0)
    feat = torch.randn(1, 16, 32, 32)
    handles = torch.rand(17, 2) * 60 + 2
    targets, refs = handles + torch.randn(17, 2) * 5, torch.randn(17, 16)
    assert draggan.features._needs_full_map(17 * 13 * 13, (64, 64))
    assert not draggan.features._needs_full_map(13 * 13, (64, 64))
    results = []
    for taps in (draggan.features.RESIZE_TAPS, 0):
        draggan.features.RESIZE_TAPS = taps
        try:
            f = feat.clone().requires_grad_(True)
            loss = motion_supervision_loss(f, (64, 64), handles, targets, 1.5)
            loss.backward()
            results.append((loss.detach(), f.grad, track_points(feat, (64, 64), handles, refs, 6)))
        finally:
            draggan.features.RESIZE_TAPS = 4
    (loss_a, grad_a, track_a), (loss_b, grad_b, track_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad_a, grad_b, rtol=0, atol=1e-7)
    assert torch.equal(track_a, track_b)


def test_sampling_refuses_features_larger_than_the_image():
    with pytest.raises(ValueError, match="larger than the image"):  # the 3-cell rule needs an enlarging resize
        bilinear_at(torch.zeros(1, 2, 16, 16), (8, 8), torch.zeros(3), torch.zeros(3))


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_tracking_recovers_a_known_shift(distance):
    torch.manual_seed(1)
    base = torch.randn(1, 8, 40, 40)
    handles = torch.tensor([[20.0, 20.0], [10.0, 30.0], [0.0, 0.0]])
    refs = base[0][:, handles[:, 0].long(), handles[:, 1].long()].T
    shifted = torch.roll(base, shifts=(3, -2), dims=(2, 3))
    moved = track_points(shifted, (40, 40), handles, refs, radius=5, distance=distance)
    # Rows move by +3 and columns by -2; the corner handle's content rolled to column 38, outside its
    # window, so only the first two handles have a recoverable shift.
    assert moved[:2].tolist() == [[23.0, 18.0], [13.0, 28.0]]


def test_motion_loss_falls_and_the_handle_moves_toward_the_target():
    G = tiny_generator(64, seed=2)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    session = DragSession(G, ws, [(30.0, 30.0)], [(30.0, 40.0)], config=_config(lr=0.03))
    result = session.run(max_steps=60)
    losses = [s.loss for s in result.history]
    assert losses[1] < losses[0]
    assert result.done and result.history[-1].distances[0] <= 1.0
    ys = [y for (_, y) in (s.handles[0] for s in result.history)]
    assert ys[-1] >= 39 and ys == sorted(ys)  # the handle walked down to its target


def test_mask_keeps_the_region_outside_it():
    G = tiny_generator(64, seed=4)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    mask = np.zeros((64, 64), bool)
    mask[15:45, 15:45] = True
    start = G.synthesis(ws)
    outside = ~torch.from_numpy(mask)

    def change(m):
        s = DragSession(G, ws, [(30.0, 30.0)], [(36.0, 30.0)], mask=m, config=_config(lr=0.03, lambda_mask=50))
        s.run(max_steps=20)
        return (s.render() - start).abs().mean(1)[0][outside].mean()

    assert change(mask) < 0.7 * change(None)


def test_official_preset_reproduces_the_fixture_trajectory():
    G, _, ref = load_fixture_generator("v128")
    fixture = json.loads((STYLEGAN2 / "v128_drag_reference.json").read_text())
    for case, data in fixture["cases"].items():
        ws_steps = np.load(STYLEGAN2 / f"v128_drag_{case}_ws.npy")
        handles = [(x, y) for y, x in data["handles_yx"]]
        targets = [(x, y) for y, x in data["targets_yx"]]
        s = DragSession(G, torch.from_numpy(ref["ws_psi07"][0:1]), handles, targets, config=DragConfig.preset("official"))
        for i, expected in enumerate(data["tracked_points_yx_per_step"]):
            state = s.step()
            assert state.handles == [(float(x), float(y)) for y, x in expected], (case, i)
            np.testing.assert_allclose(s.ws.detach().numpy(), ws_steps[i], atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", ["paper", "official"])
def test_editor_equals_the_full_resolution_step(preset):
    G = tiny_generator(128, seed=1)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    cfg = DragConfig.preset(preset)
    cfg.feature_block, cfg.lr = 3, 0.02
    handles, targets = [(20.0, 30.0), (40.0, 10.0)], [(30.0, 35.0), (35.0, 20.0)]
    fast, full = DragSession(G, ws, handles, targets, config=cfg), FullResolutionDrag(G, ws, handles, targets, cfg)
    for _ in range(8):
        fast.step()
        full.step()
        assert fast.handles == [tuple(p) for p in full.handles.flip(-1).tolist()]
        torch.testing.assert_close(fast.ws, full.ws, rtol=0, atol=1e-5)
    assert fast.handles != handles  # the handles did move


def test_target_equal_to_handle_is_done_at_once():
    G = tiny_generator(32)
    ws = G.mapping(torch.randn(1, 16), None)
    s = DragSession(G, ws, [(10.0, 12.0)], [(10.0, 12.0)], config=_config(feature_block=2))
    result = s.run(max_steps=10)
    assert result.done and len(result.history) == 1
    torch.testing.assert_close(result.ws, ws, rtol=0, atol=0)


def test_border_handles_and_non_square_generators():
    G = tiny_generator(64, square=False)  # 64 x 32
    ws = G.mapping(torch.randn(1, 16), None)
    s = DragSession(G, ws, [(0.0, 0.0), (31.0, 63.0)], [(5.0, 5.0), (25.0, 55.0)], config=_config())
    for _ in range(3):
        state = s.step()
    assert all(0 <= x <= 31 and 0 <= y <= 63 for x, y in state.handles)
    assert s.render().shape[-2:] == (64, 32)


def test_save_resume_and_rollback_round_trips(tmp_path):
    G = tiny_generator(64, seed=3)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    args = (G, ws, [(30.0, 30.0), (20.0, 40.0)], [(36.0, 30.0), (20.0, 34.0)])
    straight = DragSession(*args, config=_config())
    for _ in range(10):
        straight.step()
    first = DragSession(*args, config=_config())
    for _ in range(6):
        first.step()
    save_session(first, tmp_path)
    resumed = load_session(tmp_path, G)
    assert resumed.handles == first.handles and len(resumed.history) == 6
    for _ in range(4):
        resumed.step()
    torch.testing.assert_close(resumed.ws, straight.ws, rtol=0, atol=0)
    assert resumed.handles == straight.handles
    resumed.rollback(3)
    assert len(resumed.history) == 4
    again = resumed.step()
    assert again.handles == straight.history[4].handles and again.loss == straight.history[4].loss
    resumed.rollback(-1)
    torch.testing.assert_close(resumed.ws, ws, rtol=0, atol=0)


def test_nan_loss_stops_and_keeps_the_last_good_state():
    G = tiny_generator(64, seed=3)
    ws = G.mapping(torch.randn(1, 16), None)
    s = DragSession(G, ws, [(30.0, 30.0)], [(40.0, 30.0)], config=_config())
    for _ in range(3):
        s.step()
    good = s.ws.detach().clone()
    real_step = s.method.step

    def nan_step(first):  # the method's step, with a loss that became NaN
        out = real_step(first)
        return dataclasses.replace(out, loss=out.loss * float("nan"))

    s.method.step = nan_step
    result = s.run(max_steps=5)
    assert result.done and "nan" in result.history[-1].error
    torch.testing.assert_close(result.ws, good, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(handles=[(70.0, 5.0)]), "outside"),
    (dict(targets=[(5.0, -1.0)]), "outside"),
    (dict(targets=[(5.0, 5.0), (6.0, 6.0)]), "as many targets"),
    (dict(handles=[(float("nan"), 1.0)]), "NaN"),
    (dict(mask=np.ones((10, 10), bool)), "mask must have"),
    (dict(mask=np.zeros((64, 64), bool)), "allows nothing"),
    (dict(ws="nan"), "NaN"),
    (dict(ws="shape"), "ws must have shape"),
    (dict(config=DragConfig(feature_block=9)), "feature_block"),
    (dict(config=DragConfig(feature_block=3, tracking_distance="cosine")), "tracking_distance"),
    (dict(config=DragConfig(feature_block=3, r2=4096)), "more than half this 64x64 image"),  # ~GBs per handle
    (dict(config=DragConfig(feature_block=3, min_radius=4096)), "more than half"),
    (dict(config=DragConfig(feature_block=3, radius_unit="cells", r1=0.75, r2=17)), "fit the feature map"),
])
def test_bad_input_is_a_clear_error_before_any_work(kwargs, match):
    G = tiny_generator(64)
    ws = G.mapping(torch.randn(1, 16), None)
    if kwargs.get("ws") == "nan":
        ws = ws.clone()
        ws[0, 0, 0] = float("nan")
    elif kwargs.get("ws") == "shape":
        ws = ws[:, :-1]
    args = {**dict(handles=[(5.0, 5.0)], targets=[(10.0, 5.0)], mask=None, config=_config()), **kwargs}
    args.pop("ws", None)
    with pytest.raises(ValueError, match=match):
        DragSession(G, ws, **args)


def test_stop_distance_below_one_pixel_keeps_optimising():
    """A stop distance under a pixel: a handle between it and 1 px from its target is not done, and still gets a
    motion loss that moves the latent (it once had none: 'active' was dist > 1 px)."""
    G = tiny_generator(32)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    cfg = DragConfig(feature_block=3, stop_distance=0.3, lr=0.01, max_steps=4)
    session = DragSession(G, ws, [(10.0, 10.0)], [(10.8, 10.0)], config=cfg)
    first = session.step()
    assert not first.done and first.error is None and first.distances == [pytest.approx(0.8)]
    assert first.loss > 0 and not torch.equal(session.ws, session.ws0)  # pushed, and the latent moved


def test_the_paper_block_missing_below_128_px_is_chosen_by_the_stated_rule(caplog):
    """DragConfig() works on any generator: a 64-px one has no block 5, so the half-size block 3 is used, with a
    warning; a block the user chose that does not exist stays an error."""
    G = tiny_generator(64)
    ws = G.mapping(torch.randn(1, 16), None)
    with caplog.at_level("WARNING"):
        s = DragSession(G, ws, [(20.0, 20.0)], [(24.0, 20.0)], config=DragConfig())
    assert s.config.feature_block == 3 and s.adaptations and "block 3 (32x32" in caplog.text
    assert s.step().loss > 0
    with pytest.raises(ValueError, match="feature_block=6, but this generator has blocks 0..4"):
        DragSession(G, ws, [(20.0, 20.0)], [(24.0, 20.0)], config=DragConfig(feature_block=6))
    assert DragConfig().adapted_to(tiny_generator(128)) == (DragConfig(), [])  # where block 5 exists: nothing changes


def test_the_official_preset_runs_on_a_small_generator_with_its_stated_adaptation():
    """The official rounding gives r1 = 0 px at 64 px (no motion disk): the radius becomes 1 px, the rest stays
    official (lr 1e-3, L2 tracking, r2 = 2 px as rounded), and the change is said."""
    G = tiny_generator(64)
    ws = G.mapping(torch.randn(1, 16), None)
    s = DragSession(G, ws, [(20.0, 20.0)], [(24.0, 20.0)], config=DragConfig.preset("official"))
    assert (s.r1, s.r2) == (1.0, 2) and s.config.lr == 1e-3 and s.config.tracking_distance == "l2"
    assert any("r1 to 0 px at 64 px" in note and "min_radius=1" in note for note in s.adaptations)
    assert s.step().loss > 0


def test_recommended_settings_come_from_the_registry():
    from draggan.loading import load_generator
    from draggan.presets import DEFAULT_METHOD, RECOMMENDED
    from draggan.registry import MODELS

    toy = DragConfig.for_generator("toy-faces-64")
    assert toy == DragConfig(**{**RECOMMENDED, **MODELS["toy-faces-64"].drag}, method=DEFAULT_METHOD)
    assert toy.feature_block == 3 and toy.lr == 1e-2 and toy.method == "freedrag"
    assert DragConfig.for_generator(load_generator("toy-faces-64", device="cpu")) == toy  # G keeps its name
    assert DragConfig.preset("recommended", "toy-faces-64") == toy
    # no settings of its own: the library's rules on top of the paper's
    assert DragConfig.for_generator("stylegan2-ffhq-512") == DragConfig(**RECOMMENDED, method=DEFAULT_METHOD)
    assert (DragConfig.for_generator("/some/net.pkl") == DragConfig.for_generator(tiny_generator(32))
            == DragConfig(**RECOMMENDED, method=DEFAULT_METHOD))
    assert DragConfig.preset("paper") == DragConfig() and DragConfig().radius_unit == "px512"  # the paper's stay
    assert DragConfig.preset("recommended", method="draggan") == DragConfig(**RECOMMENDED)


def _history(handles_per_step, losses, done_at=None):
    from draggan.session import DragState

    return [DragState(step=i, handles=[h], loss=loss, distances=[5.0], done=i == done_at)
            for i, (h, loss) in enumerate(zip(handles_per_step, losses))]


def test_stall_is_no_movement_and_no_loss_decrease_for_n_steps():
    from draggan.stall import stall

    still = [(10.0, 10.0)] * 12
    assert stall(_history(still, [0.036 + 0.001 * i for i in range(12)]), 10).startswith("stalled: no handle has moved")
    said = stall(_history(still, [0.04] * 12), 10)
    assert "5.0 px left" in said and "mask" in said and "learning rate" in said
    assert stall(_history(still[:10], [0.04] * 10), 10) is None  # not yet N steps
    assert stall(_history(still, [0.04 - 0.002 * i for i in range(12)]), 10) is None  # the loss falls: progress
    moved = still[:6] + [(10.0, 11.0)] * 6
    assert stall(_history(moved, [0.04] * 12), 10) is None  # a handle moved
    assert stall(_history(still, [0.04] * 11 + [float("nan")], done_at=11), 10) is None  # done
    assert stall(_history(still, [0.04] * 12), 0) is None  # switched off


def test_a_drag_that_cannot_move_reports_the_stall():
    G = tiny_generator(32)
    ws = G.mapping(torch.randn(1, 16), None)
    cfg = DragConfig(feature_block=2, lr=1e-9, stall_steps=5)  # the latent cannot change: nothing moves
    result = DragSession(G, ws, [(10.0, 10.0)], [(20.0, 10.0)], config=cfg).run(max_steps=8)
    assert not result.done and result.stalled and "for 5 steps" in result.stalled
    ok = DragSession(G, ws, [(10.0, 10.0)], [(20.0, 10.0)], config=DragConfig(feature_block=2, lr=0.03, stall_steps=5))
    assert ok.run(max_steps=8).stalled is None


def _scripted_session(handle_stop: str, path: list[list[tuple[float, float]]]) -> DragSession:
    """Two handles whose tracked positions follow `path` ((row, col) per step after the first): the
    tracker hook scripts them, so the stop rule is tested apart from the optimisation."""
    G = tiny_generator(64, seed=2)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    steps = iter(path)
    return DragSession(G, ws, [(10.0, 10.0), (40.0, 40.0)], [(10.0, 16.0), (40.0, 46.0)],
                       config=_config(handle_stop=handle_stop, stop_distance=0.5),
                       tracker=lambda step: torch.tensor(next(steps)).flip(-1))  # the hook speaks (x, y)


# (row, col): handle 0 reaches its target (16, 10) at step 1 and leaves it; handle 1 reaches (46, 40) at step 2.
_PATH = [[(16.0, 10.0), (43.0, 40.0)], [(17.0, 10.0), (46.0, 40.0)], [(17.0, 10.0), (46.0, 40.0)]]


def test_each_handle_stops_once_it_has_reached_its_target():
    each = _scripted_session("each", _PATH)
    states = [each.step() for _ in range(3)]
    assert [s.done for s in states] == [False, False, True]  # handle 0 finished at step 1, handle 1 at step 2
    together = _scripted_session("together", _PATH)
    states = [together.step() for _ in range(4)]
    assert not any(s.done for s in states)  # never both on their targets at one step
    each.rollback(0)  # the finished handles are those of the history that remains
    assert not each.done and each.finished.tolist() == [False, False]


def test_a_handle_on_the_pixel_nearest_a_target_between_pixels_has_arrived():
    """The tracker puts handles on whole pixels; a target at (16.6, 30.6) (x, y) is 0.57 px from its nearest
    pixel (17, 31). With the recommended stop on a 64-px generator the drag ends there; a stop distance of
    0.5 px would push the handle around that pixel to the step limit (about a fifth of detected landmarks)."""
    G = tiny_generator(64, seed=2)
    ws = G.mapping(torch.randn(1, 16), None, truncation_psi=0.7)
    ends = {}
    for stop in (None, 0.5):
        config = dataclasses.replace(DragConfig.for_generator(None), method="draggan")  # DragGAN's tracking
        if stop is not None:
            config.stop_distance = stop
        session = DragSession(G, ws, [(12.0, 30.0)], [(16.6, 30.6)], config=config,
                              tracker=lambda step: torch.tensor([[17.0, 31.0]]))  # (x, y): on the nearest pixel
        ends[stop] = session.run(max_steps=6)
    assert session.stop_px == 0.5 and ends[None].done and len(ends[None].history) == 2
    assert not ends[0.5].done and len(ends[0.5].history) == 6


def test_a_reached_handle_that_drifts_off_is_pushed_back():
    """At step 2 handle 0 is 1 px off its target again, handle 1 still 3 px off: both rules push both (the
    same loss); only the stop test differs."""
    path = [[(16.0, 10.0), (43.0, 40.0)], [(17.0, 10.0), (43.0, 40.0)]]
    a, b = _scripted_session("each", path), _scripted_session("together", path)
    each = [a.step() for _ in range(3)]
    together = [b.step() for _ in range(3)]
    assert each[2].loss == pytest.approx(together[2].loss) and each[2].loss > each[1].loss > 0
    assert a.finished.tolist() == [True, False]


def test_a_stalled_handle_is_given_up_after_its_patience():
    """Handle 0 reaches its target at step 1; handle 1 stays 3 px away from step 1 on: with a patience of 3
    steps it is finished after step 4 and the edit ends at step 5; without patience it runs to the limit."""
    path = [[(16.0, 10.0), (43.0, 40.0)]] * 10
    ends = []
    for patience in (3, 0):
        s = _scripted_session("each", path)
        s.config.handle_patience = patience
        result = s.run(max_steps=8)
        ends.append((len(result.history), result.done))
    assert ends == [(6, True), (8, False)]


def test_radii_in_feature_cells_are_the_papers_at_512_px():
    cells = DragConfig(radius_unit="cells", r1=0.75, r2=3.0)
    assert (cells.radius_px(0.75, 512, 128), cells.radius_px(3.0, 512, 128)) == (3.0, 12.0)  # block 5 of 512 px
    assert (cells.radius_px(0.75, 64, 32), cells.radius_px(3.0, 64, 32)) == (1.5, 6.0)  # block 3 of 64 px
    assert DragConfig().radius_px(3.0, 64) == 1.0  # the paper's rule: round(3 / 512 * 64) = 0, then min_radius
    with pytest.raises(ValueError, match="resolution"):
        cells.radius_px(0.75, 64)


def test_the_held_out_toy_model_runs_on_the_library_defaults():
    """toy-faces-64-seed1 (issue 17's unseen model) has no drag settings of its own: the recommended rules alone
    give it what toy-faces-64's tuned registry entry says, so a check on it is a check of the defaults."""
    from draggan.loading import load_generator
    from draggan.registry import MODELS

    assert MODELS["toy-faces-64-seed1"].shipped and MODELS["toy-faces-64-seed1"].drag == {}
    held_out, tuned = load_generator("toy-faces-64-seed1"), load_generator("toy-faces-64")
    assert held_out.img_height == 64 and held_out.synthesis.block_resolutions == tuned.synthesis.block_resolutions
    mine, _ = DragConfig.for_generator(held_out).adapted_to(held_out)
    theirs, _ = DragConfig.for_generator(tuned).adapted_to(tuned)
    assert mine == theirs and (mine.feature_block, mine.lr, mine.stop_distance) == (3, 1e-2, 0.71)


def test_the_small_generator_rule_fills_only_settings_left_at_the_papers():
    small = DragConfig(small_generator_rule=True)
    cfg, notes = small.adapted_to(tiny_generator(64))
    assert (cfg.lr, cfg.stop_distance) == (1e-2, 0.71) and any("below 128 px" in n for n in notes)
    cfg, _ = DragConfig(small_generator_rule=True, lr=3e-3).adapted_to(tiny_generator(64))
    assert (cfg.lr, cfg.stop_distance) == (3e-3, 0.71)  # a learning rate given is kept
    cfg, notes = small.adapted_to(tiny_generator(128))
    assert (cfg.lr, cfg.stop_distance) == (DragConfig().lr, DragConfig().stop_distance) and not notes
    cfg, _ = DragConfig().adapted_to(tiny_generator(64))
    assert cfg.lr == DragConfig().lr  # the paper's preset is not touched
