"""The evaluation protocols on a few pairs of the shipped toy-faces model; FID's mechanism."""

from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest
import torch

from draggan.settings import DragConfig
from draggan.weights import WeightsUnavailable
from eval.flow import make_flow
from eval.landmarks import POINT_SETS, face_pairs, landmark_manipulation
from eval.paired import paired_reconstruction, sample_flow_points
from eval.trackers import make_tracker
from eval.tracking import record_drag, tracking_accuracy

# its own settings (draggan/registry.py), with DragGAN's step: the paper's protocols, and its tracker in the loop
TOY_DRAG = dataclasses.replace(DragConfig.for_generator("toy-faces-64"), method="draggan")


@pytest.fixture(scope="module")
def G(toy):  # the embedded model and `detector`: tests/eval/conftest.py
    return toy


def test_landmarks_with_another_tracker_in_the_loop(G, detector):
    short = dataclasses.replace(TOY_DRAG, max_steps=25)  # without tracking a drag never ends
    base = landmark_manipulation(G, detector, short, num_points=1, num_pairs=2, seed=5, progress=False, examples=1)
    frozen = landmark_manipulation(G, detector, short, num_points=1, num_pairs=2, seed=5, progress=False,
                                   tracker=make_tracker("none"))
    assert base.tracker == "draggan" and frozen.tracker == "none"
    assert [p["seed_a"] for p in base.pairs] == [p["seed_a"] for p in frozen.pairs]  # the same pairs
    assert base.md_no_edit == pytest.approx(frozen.md_no_edit)
    assert base.seconds_per_edit > 0 and np.isfinite(frozen.md_edit)
    assert len(base.examples) == 1 and len(base.examples[0]["frames"]) >= 2


def test_tracking_protocol_replays_draggan_exactly(G, detector):
    fp = face_pairs(G, detector, POINT_SETS[1], num_pairs=1, seed=7)
    (a, b), idx = fp.pairs[0], [list(POINT_SETS[len(POINT_SETS[17])]).index("nose_tip")]
    frames, feats, handles = record_drag(G, fp.ws[a:a + 1], fp.landmarks[a, idx].tolist(),
                                         fp.landmarks[b, idx].tolist(), TOY_DRAG)
    assert len(frames) == len(feats) == len(handles) >= 2
    tracker = make_tracker("draggan_l1", drag_config=TOY_DRAG)
    assert tracker.radius(64, feats[0].shape[-2]) == 6  # r2 = 3 cells of the 32x32 block, as in the session
    offline = tracker(torch.stack(feats), fp.landmarks[a, idx], size=(64, 64))
    assert torch.equal(offline.points, torch.stack(handles))  # the recorded clip is what the loop saw

    result = tracking_accuracy(G, detector, TOY_DRAG, [make_tracker(n) for n in ("draggan_l1", "none", "cotracker")],
                               num_points=1, num_pairs=1, seed=7, progress=False)
    by = {t.tracker: t for t in result.trackers}
    assert not by["cotracker"].available and "cotracker" in by["cotracker"].reason.lower()
    for name in ("draggan_l1", "none"):
        t = by[name]
        assert t.available and t.num_estimates > 0 and 0 <= t.within["1px"] <= t.within["2px"] <= t.within["4px"] <= 1
    assert by["draggan_l1"].mean_error < by["none"].mean_error  # following the landmark beats standing still
    own = by["draggan (in the loop)"]  # the method's own localisation: here the same tracker, run in the loop
    assert result.trackers[0] is own and own.seconds == 0.0
    assert (own.mean_error, own.within, own.num_estimates) == (by["draggan_l1"].mean_error, by["draggan_l1"].within,
                                                               by["draggan_l1"].num_estimates)


def test_tracking_protocol_records_the_block_the_session_adapted_to(G, detector):
    """The paper's block 5 does not exist at 64 px: the session uses block 3, and so must the recorded features (a
    generator without settings of its own in the registry, toy-faces-64-seed1, failed here)."""
    config = DragConfig(method="draggan", max_steps=6)  # the paper's settings: feature_block 5
    result = tracking_accuracy(G, detector, config, [make_tracker("draggan_l1", drag_config=config)], num_points=1,
                               num_pairs=1, seed=7, progress=False)
    own, offline = result.trackers
    assert offline.available and offline.num_estimates > 0 and own.mean_error == offline.mean_error


@pytest.mark.parametrize("method", ["freedrag", pytest.param("stabledrag", marks=pytest.mark.slow)])
def test_tracking_protocol_measures_a_methods_own_localisation(G, detector, method):
    config = dataclasses.replace(TOY_DRAG, method=method, max_steps=30)
    result = tracking_accuracy(G, detector, config, [make_tracker("none")], num_points=1, num_pairs=1, seed=7,
                               progress=False)
    own, still = result.trackers
    assert own.tracker == f"{method} (in the loop)" and still.tracker == "none"
    assert own.num_estimates == still.num_estimates > 0  # the same steps, the same ground truth
    assert own.mean_error < still.mean_error, (own, still)  # it follows the landmark it moves


def test_flow_points_respect_min_flow_and_the_image():
    flow = np.zeros((16, 16, 2), np.float32)
    flow[4:8, 4:8] = (3.0, 0.0)
    flow[0, 15] = (5.0, 0.0)  # would leave the image
    h, t = sample_flow_points(flow, 32, np.random.default_rng(0), min_flow=2.0)
    assert len(h) == 16 and (h >= 4).all() and (h < 8).all() and np.allclose(t - h, [3, 0])


def test_paired_reconstruction_moves_towards_image_2(G):
    cfg = dataclasses.replace(TOY_DRAG, max_steps=40)
    result = paired_reconstruction(G, cfg, make_flow("dis"), num_pairs=1, num_points=16, seed=1, progress=False)
    pair = result.pairs[0]
    assert pair["flow_mean_px"] >= 2.0 and pair["points"] == 16
    assert result.mse < result.mse_no_edit, pair
    assert result.lpips is None and result.psnr > result.psnr_no_edit


def test_fid_without_weights_names_the_file(tmp_path, monkeypatch):
    from eval.fid import load_fid_inception

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception()


def test_fid_loads_its_network_from_a_weights_file(tmp_path, monkeypatch):
    # Random weights written by the test (the real file cannot be downloaded here): the loading path
    # and the 2048-d pool features; the distance itself is checked on Gaussians below.
    import pytorch_fid.inception as fi

    from eval.fid import FID_FILE, inception_features, load_fid_inception

    captured = {}
    with mock.patch.object(fi, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, sd, *a, **k: captured.setdefault("m", self)):
        fi.fid_inception_v3()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    state = captured["m"].state_dict()
    torch.save(state, tmp_path / "hub" / "checkpoints" / FID_FILE)
    net = load_fid_inception()
    feats = inception_features(net, torch.rand(2, 3, 64, 64) * 2 - 1)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    assert torch.equal(net.blocks[0][0].conv.weight, state["Conv2d_1a_3x3.conv.weight"])  # the file's values


def test_frechet_distance_of_gaussians():
    from eval.fid import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3)) + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.2)  # |mu_a - mu_b|^2 with equal covariances


def test_landmark_detectors_are_pluggable(tmp_path, monkeypatch):
    from eval.detectors import IBUG_POINT_SETS, load_landmark_detector
    from eval.landmarks import point_indices

    toy = load_landmark_detector("toyfaces")
    assert point_indices(toy, 5)[0][2] == "nose_tip"
    with pytest.raises(ValueError, match="one of"):
        point_indices(toy, 68)
    # FFHQ's detector: the package or its weights are missing here, and it says which.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable, match="face-alignment|2DFAN4"):
        load_landmark_detector("face_alignment")
    assert len(IBUG_POINT_SETS[68]) == 68 and IBUG_POINT_SETS[1] == ("ibug_30",)
    custom = load_landmark_detector("eval.detectors:_toy")  # module:factory
    assert custom.point_sets[1] == ("nose_tip",)
    with pytest.raises(ValueError, match="unknown landmark detector"):
        load_landmark_detector("dlib")
