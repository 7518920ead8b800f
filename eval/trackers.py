"""Point trackers behind one interface: `tracker(frames or features, queries) -> TrackResult`.

`queries` are [N, 2] (x, y) points in the first frame; the result holds each point's (x, y) in every
frame. Frames are [T, 3, H, W] images in [-1, 1] (the generator's range); DragGAN's tracker takes
[T, C, h, w] generator features instead, with the image size.

| name | what | weights |
| --- | --- | --- |
| `draggan_l1`, `draggan_l2` | DragGAN's nearest neighbour of the first frame's handle feature in a (2 r2 + 1)^2 window | the generator's |
| `lucas_kanade` | OpenCV's pyramidal Lucas-Kanade, frame to frame | none |
| `dis`, `farneback` | OpenCV dense flow, sampled at the points, frame to frame | none |
| `raft_small`, `raft_large` | torchvision's RAFT flow, frame to frame | torchvision's release |
| `cotracker` | CoTracker (Karaev et al. 2023), a PIPs-style tracker of whole clips, through torch.hub | its release |
| `none` | the points never move | none |

A tracker whose weights are missing reports why through `availability()` and refuses to run; it is
never run with random weights. `in_loop(tracker)` turns a tracker into the point-tracking step of a
`DragSession` (a `draggan.point_tracker.PointTracker`, for the paper's tracker ablation).
"""

from __future__ import annotations

import os
from collections.abc import Callable
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from draggan.features import resized_features_at, track_points
from draggan.plugins import is_spec, load_object
from draggan.point_tracker import TrackingStep
from draggan.points import rc_to_xy, xy_to_rc
from draggan.settings import DragConfig
from draggan.weights import WeightsUnavailable, hub_checkpoint_path
from eval.flow import (
    DISFlow,
    FarnebackFlow,
    FlowEstimator,
    RAFTFlow,
    sample_flow,
    to_uint8_gray,
)



@dataclass
class TrackResult:
    points: torch.Tensor  # [T, N, 2] (x, y) of each query in each frame
    visible: torch.Tensor  # [T, N] bool: the tracker is confident the point is there
    seconds: float  # wall time of the tracking


class Tracker:
    """Base class: frame-to-frame tracking built on `pair`, unless a subclass tracks whole clips."""

    name = "tracker"
    kind = "frames"  # 'frames' or 'features'
    history = 2  # frames an online update needs (None = the whole clip so far)

    def availability(self) -> str | None:
        """None when the tracker can run, else the reason it cannot."""
        return None

    def check(self) -> None:
        reason = self.availability()
        if reason is not None:
            raise WeightsUnavailable(f"tracker {self.name} is unavailable: {reason}")

    def pair(self, img1: torch.Tensor, img2: torch.Tensor, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move (x, y) `points` [N, 2] from img1 to img2; returns (points [N, 2], visible [N])."""
        raise NotImplementedError

    def __call__(self, frames: torch.Tensor, queries, **kwargs) -> TrackResult:
        self.check()
        t0 = time.perf_counter()
        pts = np.asarray(torch.as_tensor(queries, dtype=torch.float32).cpu(), dtype=np.float32).reshape(-1, 2)
        out, vis = [pts], [np.ones(len(pts), bool)]
        for t in range(1, len(frames)):
            pts, v = self.pair(frames[t - 1], frames[t], pts)
            out.append(pts.astype(np.float32))
            vis.append(vis[-1] & v)
        return TrackResult(points=torch.from_numpy(np.stack(out)), visible=torch.from_numpy(np.stack(vis)),
                           seconds=time.perf_counter() - t0)

    def online(self, frames: list[torch.Tensor], points: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """The points in the newest frame, given the frames so far (at least `history` of them), the
        points in the frame before and the queries in the first frame."""
        return self.pair(frames[-2], frames[-1], points)[0]


class NoTracker(Tracker):
    """Handles never updated (the paper's 'w/o tracking')."""

    name = "none"

    def pair(self, img1, img2, points):
        return points.copy(), np.ones(len(points), bool)


class FlowTracker(Tracker):
    """Points moved by a dense flow field between consecutive frames, sampled bilinearly."""

    def __init__(self, flow: FlowEstimator):
        self.flow = flow
        self.name = flow.name

    def availability(self):
        return self.flow.availability()

    def pair(self, img1, img2, points):
        flow = self.flow(img1, img2)
        moved = points + sample_flow(flow, points)
        H, W = flow.shape[:2]
        inside = (moved[:, 0] >= 0) & (moved[:, 0] <= W - 1) & (moved[:, 1] >= 0) & (moved[:, 1] <= H - 1)
        return moved, inside


class LucasKanadeTracker(Tracker):
    """OpenCV's pyramidal Lucas-Kanade (Bouguet 2001); a lost point stays where it was, not visible."""

    name = "lucas_kanade"

    def __init__(self, win_size: int = 9, max_level: int = 2, iterations: int = 30, epsilon: float = 0.01):
        import cv2

        self.params = dict(winSize=(win_size, win_size), maxLevel=max_level,
                           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, epsilon))

    def pair(self, img1, img2, points):
        import cv2

        p0 = points.reshape(-1, 1, 2).astype(np.float32)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(to_uint8_gray(img1), to_uint8_gray(img2), p0, None, **self.params)
        ok = status.reshape(-1).astype(bool) & np.isfinite(p1.reshape(-1, 2)).all(1)
        moved = np.where(ok[:, None], p1.reshape(-1, 2), points)
        return moved.astype(np.float32), ok


class FeatureTracker(Tracker):
    """DragGAN's point tracking: in every frame, the pixel of a (2 r2 + 1)^2 window around the last
    position whose (resized) generator feature is nearest, in L1 or L2, to the query's feature in the
    first frame. Takes features [T, C, h, w] and `size=(H, W)` of the image."""

    kind = "features"

    def __init__(self, distance: str = "l1", r2: float = 12.0, min_radius: float | None = 1.0,
                 radius_unit: str = "px512"):
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
        self.distance, self.r2, self.min_radius, self.radius_unit = distance, r2, min_radius, radius_unit
        self.name = f"draggan_{distance}"

    def radius(self, height: int, feature_resolution: int | None = None) -> int:
        """The search window's half-size in image pixels, as `DragSession` computes it (r2 in 512-px pixels or in
        cells of the feature map)."""
        cfg = DragConfig(r2=self.r2, min_radius=self.min_radius, radius_unit=self.radius_unit)
        return int(cfg.radius_px(self.r2, height, feature_resolution))

    def __call__(self, features: torch.Tensor, queries, *, size: tuple[int, int], **kwargs) -> TrackResult:
        t0 = time.perf_counter()
        q = torch.as_tensor(queries, dtype=torch.float32).reshape(-1, 2).to(features.device)
        rc = xy_to_rc(q)
        idx = rc.round().to(torch.int64)
        refs = resized_features_at(features[:1], size, idx[:, 0], idx[:, 1]).T.contiguous()
        out = [rc]
        for t in range(1, len(features)):
            out.append(track_points(features[t:t + 1], size, out[-1], refs, self.radius(size[0], features.shape[-2]),
                                    self.distance))
        pts = torch.stack([rc_to_xy(p) for p in out]).cpu()
        return TrackResult(points=pts, visible=torch.ones(pts.shape[:2], dtype=torch.bool),
                           seconds=time.perf_counter() - t0)


class CoTracker(Tracker):
    """CoTracker through torch.hub from its local cache (the repository in torch hub's folder and the
    checkpoint in its `checkpoints/`); tracks the queries of the first frame through the whole clip."""

    history = None

    def __init__(self, model: str = "cotracker2", repo: str | os.PathLike | None = None,
                 checkpoint: str = "cotracker2.pth", device: str | torch.device = "cpu"):
        self.name = "cotracker"
        self.model_name, self.device = model, torch.device(device)
        self.repo = Path(repo) if repo else Path(torch.hub.get_dir()) / "facebookresearch_co-tracker_main"
        self.checkpoint = hub_checkpoint_path(checkpoint)
        self._model = None

    def availability(self):
        missing = [str(p) for p in (self.repo / "hubconf.py", self.checkpoint) if not p.is_file()]
        if missing:
            return (f"CoTracker needs its torch.hub repository and checkpoint, missing: {', '.join(missing)} "
                    "(run torch.hub.load('facebookresearch/co-tracker', 'cotracker2') once on a machine with "
                    "internet and copy torch hub's folder here)")
        return None

    def model(self):
        self.check()
        if self._model is None:
            self._model = torch.hub.load(str(self.repo), self.model_name, source="local").to(self.device).eval()
        return self._model

    @torch.no_grad()
    def __call__(self, frames, queries, **kwargs):
        net = self.model()
        t0 = time.perf_counter()
        q = torch.as_tensor(queries, dtype=torch.float32).reshape(-1, 2)
        video = ((frames.float().clamp(-1, 1) + 1) * 127.5)[None].to(self.device)  # [1, T, 3, H, W] in 0..255
        qs = torch.cat([torch.zeros(len(q), 1), q], 1)[None].to(self.device)  # (t, x, y)
        tracks, vis = net(video, queries=qs)
        return TrackResult(points=tracks[0].cpu().float(), visible=vis[0].cpu().bool(),
                           seconds=time.perf_counter() - t0)

    def online(self, frames, points, queries):
        return self(torch.stack(frames), queries).points[-1].numpy()


TrackerFactory = Callable[..., "Tracker"]  # (drag_config, weights, download, device) -> Tracker
_TRACKERS: dict[str, TrackerFactory] = {
    "draggan_l1": lambda cfg, **_: FeatureTracker("l1", r2=cfg.r2, min_radius=cfg.min_radius, radius_unit=cfg.radius_unit),
    "draggan_l2": lambda cfg, **_: FeatureTracker("l2", r2=cfg.r2, min_radius=cfg.min_radius, radius_unit=cfg.radius_unit),
    "lucas_kanade": lambda cfg, **_: LucasKanadeTracker(),
    "dis": lambda cfg, **_: FlowTracker(DISFlow()),
    "farneback": lambda cfg, **_: FlowTracker(FarnebackFlow()),
    "raft_small": lambda cfg, weights, download, device: FlowTracker(RAFTFlow("small", weights=weights, download=download,
                                                                             device=device)),
    "raft_large": lambda cfg, weights, download, device: FlowTracker(RAFTFlow("large", weights=weights, download=download,
                                                                             device=device)),
    "cotracker": lambda cfg, device, **_: CoTracker(device=device),
    "none": lambda cfg, **_: NoTracker(),
}
TRACKERS = tuple(_TRACKERS)  # the shipped trackers (the tracking benchmark's default set)


def register_tracker(name: str, factory: TrackerFactory) -> None:
    """Make `factory(drag_config, weights=, download=, device=) -> Tracker` the tracker `name` (`tracker.name=name`)."""
    if name in _TRACKERS and _TRACKERS[name] is not factory:
        raise ValueError(f"tracker {name!r} is already registered")
    _TRACKERS[name] = factory


def make_tracker(name: str, *, drag_config: DragConfig | None = None, weights: str | os.PathLike | None = None,
                 download: bool = False, device: str | torch.device = "cpu") -> Tracker:
    """The tracker `name`: a registered one (TRACKERS, or `register_tracker`), or `module:Class` (a `Tracker`
    subclass of the user's, made without arguments); DragGAN's take r2, its unit and min_radius from `drag_config`."""
    cfg = drag_config or DragConfig()
    if name in _TRACKERS:
        return _TRACKERS[name](cfg, weights=weights, download=download, device=device)
    if is_spec(name):
        cls = load_object(name, "tracker")
        if not (isinstance(cls, type) and issubclass(cls, Tracker)):
            raise ValueError(f"tracker {name!r} is not a subclass of eval.trackers.Tracker")
        return cls()
    raise ValueError(f"unknown tracker {name!r} (expected one of {', '.join(_TRACKERS)}, or module:Class)")


class _InLoop:
    """A `draggan.point_tracker.PointTracker` made of an evaluation tracker: frame trackers see the images of the drag so
    far (the first one rendered from the start latent), DragGAN's feature tracker the session's features."""

    def __init__(self, tracker: Tracker):
        tracker.check()
        self.tracker = tracker
        self.frames: list[torch.Tensor] = []

    def __call__(self, step: TrackingStep) -> torch.Tensor | np.ndarray:
        if isinstance(self.tracker, FeatureTracker):
            rc = track_points(step.features, step.size, xy_to_rc(step.handles), step.reference_features,
                              self.tracker.radius(step.size[0]), self.tracker.distance)
            return rc_to_xy(rc)
        if not self.frames:  # the first image, from the start latent
            self.frames.append(step.start_image()[0])
        self.frames.append(step.image()[0])
        if self.tracker.history is not None:
            del self.frames[:-self.tracker.history]
        return self.tracker.online(self.frames, step.handles.cpu().numpy(), step.start_handles.cpu().numpy())


def in_loop(tracker: Tracker):
    """A `DragSession(tracker=...)` callable that tracks the handles with `tracker` (fresh per session)."""
    return _InLoop(tracker)
