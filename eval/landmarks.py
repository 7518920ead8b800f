"""Landmark protocols on a generator of the toy-faces domain.

`landmark_manipulation` is the paper's Table 1 protocol (Pan et al. 2023, section 4.2): generate two
faces, detect their landmarks, drag the first face's landmarks to the second face's, detect again,
and report the mean distance (MD) of the re-detected landmarks to their targets, next to the mean
distance before the edit ("no edit"). `detection_rate` is the share of samples on which every
landmark is detected with confidence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from draggan.drag import DragConfig, DragSession
from draggan.networks import Generator
from draggan.toyfaces.detector import LandmarkDetector
from draggan.toyfaces.renderer import LANDMARKS

# The landmark sets of the paper's 1-, 5- and 68-point rows, in this domain: the nose tip; the usual
# five-point face set; every landmark.
POINT_SETS: dict[int, tuple[str, ...]] = {
    1: ("nose_tip",),
    5: ("left_eye_center", "right_eye_center", "nose_tip", "mouth_left", "mouth_right"),
    len(LANDMARKS): LANDMARKS,
}


def sample_latents(G: Generator, seeds: Sequence[int], truncation_psi: float) -> torch.Tensor:
    """W+ latents [N, num_ws, w_dim] of `seeds` (z from numpy's RandomState, like the edit command)."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds])).to(device, torch.float32)
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=truncation_psi)


def synthesize(G: Generator, ws: torch.Tensor, batch: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([G.synthesis(ws[i:i + batch]) for i in range(0, len(ws), batch)])


@dataclass
class DetectionRateResult:
    rate: float  # share of samples with every landmark detected
    per_landmark: dict[str, float]  # share of samples on which each landmark is detected
    num_samples: int
    truncation_psi: float


def detection_rate(G: Generator, detector: LandmarkDetector, *, num_samples: int = 256, seed: int = 0,
                   truncation_psi: float = 0.7) -> DetectionRateResult:
    """Detect the landmarks of `num_samples` generated faces (seeds seed, seed+1, ...)."""
    imgs = synthesize(G, sample_latents(G, range(seed, seed + num_samples), truncation_psi))
    det = detector(imgs)
    return DetectionRateResult(rate=float(det.detected.all(dim=1).float().mean()),
                               per_landmark={n: float(det.detected[:, i].float().mean()) for i, n in enumerate(LANDMARKS)},
                               num_samples=num_samples, truncation_psi=truncation_psi)


@dataclass
class LandmarkManipulationResult:
    num_points: int
    landmarks: tuple[str, ...]  # the names of the dragged landmarks
    num_pairs: int
    md_edit: float  # mean distance of the re-detected landmarks to their targets after the drag, pixels
    md_no_edit: float  # mean distance of the first face's landmarks to the targets, pixels
    ratio: float  # md_edit / md_no_edit
    steps_mean: float  # drag steps per pair
    reached: float  # share of pairs whose tracked handles reached their targets
    seconds: float
    pairs: list[dict] = field(default_factory=list)  # seeds and distances of each pair


def landmark_manipulation(G: Generator, detector: LandmarkDetector, drag_config: DragConfig, *,
                          num_points: int = 1,  # a key of POINT_SETS (1, 5 or all landmarks)
                          num_pairs: int = 30,  # pairs of faces
                          seed: int = 0,  # candidate faces are seeds seed, seed+1, ...
                          truncation_psi: float = 0.7,
                          progress: bool = True) -> LandmarkManipulationResult:
    """Drag face A's landmarks to face B's for `num_pairs` pairs; MD after the edit and without it.

    Faces whose chosen landmarks are not all detected are passed over (as a face detector would fail
    on them), so every pair is made of two faces with detected landmarks.
    """
    if num_points not in POINT_SETS:
        raise ValueError(f"num_points must be one of {sorted(POINT_SETS)}, got {num_points}")
    names = POINT_SETS[num_points]
    idx = torch.tensor([LANDMARKS.index(n) for n in names])
    t0 = time.perf_counter()
    seeds, ws_parts, lm_parts, valid = [], [], [], []
    limit = 20 * num_pairs  # candidate faces at most; detection failures are passed over
    while len(valid) < 2 * num_pairs and len(seeds) < limit:
        chunk = list(range(seed + len(seeds), seed + len(seeds) + 2 * num_pairs))
        ws = sample_latents(G, chunk, truncation_psi)
        det = detector(synthesize(G, ws))
        ok = det.detected[:, idx].all(dim=1)
        valid += [len(seeds) + i for i in range(len(chunk)) if ok[i]]
        seeds += chunk
        ws_parts.append(ws)
        lm_parts.append(det.landmarks)
    if len(valid) < 2 * num_pairs:
        raise RuntimeError(f"only {len(valid)} of {len(seeds)} generated faces have the landmarks {names} "
                           f"detected; {2 * num_pairs} are needed")
    ws_all, points = torch.cat(ws_parts), torch.cat(lm_parts)
    pairs, edit_d, none_d, steps, reached = [], [], [], [], []
    for k in tqdm(range(num_pairs), desc=f"landmarks ({num_points} pt)", disable=not progress, dynamic_ncols=True):
        a, b = valid[2 * k], valid[2 * k + 1]
        handles = points[a, idx].tolist()
        targets = points[b, idx].tolist()
        session = DragSession(G, ws_all[a:a + 1], handles, targets, config=drag_config)
        result = session.run()
        after = detector(result.image.clamp(-1, 1))
        d_edit = (after.landmarks[0, idx] - points[b, idx]).norm(dim=-1).mean().item()
        d_none = (points[a, idx] - points[b, idx]).norm(dim=-1).mean().item()
        edit_d.append(d_edit)
        none_d.append(d_none)
        steps.append(len(result.history))
        reached.append(result.done)
        pairs.append(dict(seed_a=seeds[a], seed_b=seeds[b], md_edit=d_edit, md_no_edit=d_none, steps=len(result.history),
                          detected_after=bool(after.detected[0, idx].all())))
    md_edit, md_none = float(np.mean(edit_d)), float(np.mean(none_d))
    return LandmarkManipulationResult(num_points=num_points, landmarks=names, num_pairs=num_pairs, md_edit=md_edit,
                                      md_no_edit=md_none, ratio=md_edit / max(md_none, 1e-12),
                                      steps_mean=float(np.mean(steps)), reached=float(np.mean(reached)),
                                      seconds=time.perf_counter() - t0, pairs=pairs)
