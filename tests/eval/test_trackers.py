"""Trackers and flow estimators on clips with a known motion; weights handling; trackers in the drag loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from draggan.session import DragSession
from draggan.settings import DragConfig
from draggan.weights import WeightsUnavailable
from eval.flow import make_flow, sample_flow
from eval.trackers import TRACKERS, CoTracker, FeatureTracker, in_loop, make_tracker
from tests.conftest import tiny_generator

H = W = 64
MOTION = np.array([1.0, 0.5])  # (dx, dy) per frame


def blob_frame(cx: float, cy: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    g = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 32) + 0.5 * torch.exp(-((xx - cx - 6) ** 2 + (yy - cy + 3) ** 2) / 8)
    tex = 0.2 * torch.sin((xx - cx) * 0.9) * torch.cos((yy - cy) * 0.7)
    return ((g + tex * g).clamp(0, 1) * 2 - 1).expand(3, H, W)


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.stack([blob_frame(30 + MOTION[0] * t, 32 + MOTION[1] * t) for t in range(6)])


@pytest.mark.parametrize("name", ["lucas_kanade", "dis", "farneback"])
def test_offline_trackers_follow_a_known_motion(clip, name):
    queries = np.array([[30.0, 32.0], [33.0, 30.0]])
    result = make_tracker(name)(clip, queries)
    truth = queries + MOTION * (len(clip) - 1)
    assert result.points.shape == (len(clip), 2, 2)
    assert np.abs(result.points[-1].numpy() - truth).max() < 0.35, result.points[-1]
    assert result.visible.all()


def test_no_tracker_never_moves(clip):
    result = make_tracker("none")(clip, [[30, 32]])
    assert torch.equal(result.points, torch.tensor([[[30.0, 32.0]]]).expand(len(clip), 1, 2))


def test_feature_tracker_finds_integer_shifts_of_a_texture():
    torch.manual_seed(0)
    base = torch.randn(8, 40, 40)
    shifts = [(0, 0), (1, 0), (2, 1), (3, 1)]  # (dx, dy) from frame 0
    feats = torch.stack([torch.roll(base, shifts=(dy, dx), dims=(1, 2)) for dx, dy in shifts])
    for distance in ("l1", "l2"):
        result = FeatureTracker(distance, r2=12 * 512 / 40)(feats, [[10, 12], [25, 20]], size=(40, 40))
        expected = torch.tensor([[[10 + dx, 12 + dy], [25 + dx, 20 + dy]] for dx, dy in shifts], dtype=torch.float32)
        assert torch.equal(result.points, expected)


def test_every_tracker_has_a_constructor():
    for name in TRACKERS:
        tracker = make_tracker(name)
        assert tracker.name == name
    with pytest.raises(ValueError, match="unknown tracker"):
        make_tracker("sift")


def test_missing_raft_weights_make_it_unavailable_with_the_file_named(tmp_path, monkeypatch, clip):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    tracker = make_tracker("raft_small")
    reason = tracker.availability()
    assert "raft_small_C_T_V2-01064c6d.pth" in reason and str(tmp_path / "hub" / "checkpoints") in reason
    with pytest.raises(WeightsUnavailable, match="unavailable"):
        tracker(clip, [[30, 32]])
    with pytest.raises(WeightsUnavailable):
        in_loop(tracker)
    with pytest.raises(WeightsUnavailable, match="not found"):
        make_flow("raft_large", weights=tmp_path / "nope.pth").model()


def test_raft_runs_from_a_weights_file_in_the_hub_cache(tmp_path, monkeypatch, clip):
    # The mechanism only: the weights here are random (written by the test); the real file is
    # torchvision's release, which this machine cannot download.
    from torchvision.models.optical_flow import raft_small

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), tmp_path / "hub" / "checkpoints" / "raft_small_C_T_V2-01064c6d.pth")
    flow = make_flow("raft_small")
    assert flow.availability() is None
    field = flow(clip[0], clip[1])
    assert field.shape == (H, W, 2) and np.isfinite(field).all()
    result = make_tracker("raft_small")(clip[:2], [[30, 32]])
    assert result.points.shape == (2, 1, 2)


def test_cotracker_without_its_hub_cache_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    reason = CoTracker().availability()
    assert "hubconf.py" in reason and "cotracker2.pth" in reason


def test_sample_flow_is_bilinear():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[:, 2, 0] = 2.0
    assert np.allclose(sample_flow(flow, np.array([[1.5, 1.0], [2.0, 3.0]])), [[1.0, 0.0], [2.0, 0.0]])


def test_feature_tracker_in_the_loop_matches_the_built_in_tracking():
    G = tiny_generator(32, seed=3)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    cfg = DragConfig(feature_block=2, lr=0.01, max_steps=6)
    built_in = DragSession(G, ws, [[12, 14]], [[18, 14]], config=cfg).run()
    hooked = DragSession(G, ws, [[12, 14]], [[18, 14]], config=cfg,
                         tracker=in_loop(make_tracker("draggan_l1", drag_config=cfg))).run()
    assert [s.handles for s in built_in.history] == [s.handles for s in hooked.history]
    assert torch.equal(built_in.ws, hooked.ws)


def test_frame_trackers_in_the_loop():
    G = tiny_generator(32, seed=3)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    cfg = DragConfig(feature_block=2, lr=0.01, max_steps=5)
    frozen = DragSession(G, ws, [[12, 14]], [[18, 14]], config=cfg, tracker=in_loop(make_tracker("none"))).run()
    assert all(s.handles == [(12.0, 14.0)] for s in frozen.history)
    dis = DragSession(G, ws, [[12, 14]], [[18, 14]], config=cfg, tracker=in_loop(make_tracker("dis"))).run()
    assert len(dis.history) == 5 and all(np.isfinite(s.handles).all() for s in dis.history)


def test_a_tracker_of_ones_own_is_taken_by_module_and_class(tmp_path, monkeypatch):
    """`tracker.name=<module>:<Class>` (a Tracker subclass from the working directory), or `register_tracker`."""
    import sys

    from eval.trackers import NoTracker, register_tracker

    (tmp_path / "mytrackers.py").write_text("from eval.trackers import NoTracker\n\n\nclass Still(NoTracker):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mytrackers", raising=False)
    tracker = make_tracker("mytrackers:Still")
    assert type(tracker).__name__ == "Still" and isinstance(tracker, NoTracker)
    with pytest.raises(ValueError, match="not a subclass of eval.trackers.Tracker"):
        make_tracker("textwrap:dedent")
    with pytest.raises(ValueError, match="unknown tracker 'nope'"):
        make_tracker("nope")
    register_tracker("still-test", lambda cfg, **_: NoTracker())
    assert isinstance(make_tracker("still-test"), NoTracker)
