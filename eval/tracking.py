"""Tracking accuracy during drags (beyond the paper): how well does each tracker follow a landmark
while a drag method moves it?

For each pair of faces (as in the landmark protocol), the drag method (`drag_config.method`: DragGAN
with its own tracker by default) drags the first face's landmarks to the second's. Every step's image
and generator features are recorded; the ground truth is the landmark re-detected in each step's image
(steps where it is not detected with confidence are left out). The first row is the method's own
localisation as it was inside the loop (DragGAN's tracker, FreeDrag's line search, StableDrag's learned
tracker); every other tracker then runs on the same recorded clip from the same queries. Each estimate is
compared with the ground truth: mean error and the share within 1, 2 and 4 px.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from draggan.networks import Generator
from draggan.progress import phase
from draggan.session import DragSession
from draggan.settings import DragConfig
from eval.landmarks import face_pairs, point_indices
from eval.shards import Shard
from eval.trackers import Tracker

THRESHOLDS_PX = (1.0, 2.0, 4.0)


@dataclass
class Clip:
    """One drag, recorded: frames[t] and features[t] are the image and features that step t tracked in."""

    frames: torch.Tensor  # [T, 3, H, W] in [-1, 1]
    features: torch.Tensor  # [T, C, h, w]
    queries: torch.Tensor  # [N, 2] (x, y) handles in frame 0
    truth: torch.Tensor  # [T, N, 2] re-detected (x, y) landmarks
    detected: torch.Tensor  # [T, N] bool
    in_loop: torch.Tensor  # [T, N, 2] the handles the method localised inside the loop


@dataclass
class TrackerAccuracy:
    tracker: str
    available: bool
    reason: str | None = None  # why it is unavailable
    mean_error: float = float("nan")  # pixels, over every (step >= 1, point) with a detected truth
    within: dict[str, float] = field(default_factory=dict)  # '1px' -> share within 1 px, ...
    num_estimates: int = 0
    seconds: float = 0.0  # tracking time over all clips


@dataclass
class TrackingResult:
    num_points: int
    num_pairs: int
    steps_mean: float
    trackers: list[TrackerAccuracy]
    seconds: float


def record_drag(G: Generator, ws: torch.Tensor, handles, targets, drag_config: DragConfig) -> tuple[list, list, list]:
    """Run a drag of `drag_config.method` (DragGAN's own tracking by default); returns per tracked step its frame,
    features and handles (the method's localisation)."""
    session = DragSession(G, ws, handles, targets, config=drag_config)
    noise = session.config.noise_mode

    def grab() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            feat = G.synthesis.features(session.ws.detach(), up_to=session.config.feature_block,  # as adapted to G
                                        noise_mode=noise)[-1]
        return session.render()[0].clamp(-1, 1), feat[0]

    first = grab()
    frames, feats = [first[0]], [first[1]]

    def after_step(state, s) -> None:
        if not state.done:  # the latent moved: the next step tracks in this image
            f, x = grab()
            frames.append(f)
            feats.append(x)

    result = session.run(callback=after_step)
    n = len(result.history)  # step t tracked in frame t
    return frames[:n], feats[:n], [torch.tensor(h.handles) for h in result.history]


def tracking_accuracy(G: Generator, detector, drag_config: DragConfig, trackers: Sequence[Tracker],
                      *, num_points: int = 1, num_pairs: int = 10, seed: int = 0, truncation_psi: float = 0.7,
                      progress: bool = True, shard: Shard = Shard()) -> TrackingResult:
    names, idx = point_indices(detector, num_points)
    t0 = time.perf_counter()
    with phase(f"tracking: choosing {num_pairs} pairs of faces", enabled=progress):
        fp = face_pairs(G, detector, names, num_pairs=num_pairs, seed=seed, truncation_psi=truncation_psi)
    clips = []
    mine = [ab for i, ab in enumerate(fp.pairs) if shard.owns(i)]  # `shard`: only its pairs
    for a, b in tqdm(mine, desc=f"tracking ({num_points} pt)", disable=not progress, dynamic_ncols=True):
        frames, feats, handles = record_drag(G, fp.ws[a:a + 1], fp.landmarks[a, idx].tolist(),
                                             fp.landmarks[b, idx].tolist(), drag_config)
        frames = torch.stack(frames)
        det = detector(frames)
        clips.append(Clip(frames=frames, features=torch.stack(feats), queries=fp.landmarks[a, idx],
                          truth=det.landmarks[:, idx], detected=det.detected[:, idx], in_loop=torch.stack(handles)))
    size = (G.img_height, G.img_width)
    # The method's own localisation during the drag (DragGAN's tracker, FreeDrag's line search, StableDrag's
    # learned tracker), as it was inside the loop: the row that compares the methods' tracking.
    errors = [(c.in_loop - c.truth).norm(dim=-1)[1:][c.detected[1:]] for c in clips]
    out = [_accuracy(f"{drag_config.method} (in the loop)", errors, 0.0)]
    for tracker in trackers:
        reason = tracker.availability()
        if reason is not None:
            out.append(TrackerAccuracy(tracker=tracker.name, available=False, reason=reason))
            continue
        errors, seconds = [], 0.0
        for clip in clips:
            src = clip.features if tracker.kind == "features" else clip.frames
            res = tracker(src, clip.queries, size=size)
            seconds += res.seconds
            err = (res.points - clip.truth).norm(dim=-1)[1:]  # step 0 is the query itself
            errors.append(err[clip.detected[1:]])
        out.append(_accuracy(tracker.name, errors, seconds))
    return TrackingResult(num_points=num_points, num_pairs=num_pairs, trackers=out,
                          steps_mean=float(np.mean([len(c.frames) for c in clips])), seconds=time.perf_counter() - t0)


def _accuracy(name: str, errors: list[torch.Tensor], seconds: float) -> TrackerAccuracy:
    e = torch.cat(errors).double().numpy() if errors else np.zeros(0)  # float64: shards merge to the same figures
    return TrackerAccuracy(tracker=name, available=True, num_estimates=int(e.size), seconds=seconds,
                           mean_error=float(e.mean()) if e.size else float("nan"),
                           within={f"{t:g}px": float((e <= t).mean()) if e.size else float("nan")
                                   for t in THRESHOLDS_PX})
