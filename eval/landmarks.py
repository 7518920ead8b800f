"""Landmark protocols on a generator of the toy-faces domain.

`landmark_manipulation` is the paper's Table 1 protocol (Pan et al. 2023, section 4.2): generate two
faces, detect their landmarks, drag the first face's landmarks to the second face's, detect again,
and report the mean distance (MD) of the re-detected landmarks to their targets, next to the mean
distance before the edit ("no edit"), and the edit's locality (`eval.locality`: the change of the
image away from the handle -> target paths). `detection_rate` is the share of samples on which every
landmark is detected with confidence.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from draggan.apps.toyfaces.detector import Detection, LandmarkDetector
from draggan.apps.toyfaces.renderer import LANDMARKS
from draggan.latents import latents_from_seeds, synthesize
from draggan.networks import Generator
from draggan.progress import phase
from draggan.render import DragFrames
from draggan.session import DragSession
from draggan.settings import DragConfig
from eval.shards import Shard
from eval.locality import default_margin, edit_locality, mean_change, path_region
from eval.trackers import in_loop

# The landmark sets of the paper's 1-, 5- and 68-point rows, in this domain: the nose tip; the usual
# five-point face set; every landmark.
POINT_SETS: dict[int, tuple[str, ...]] = {
    1: ("nose_tip",),
    5: ("left_eye_center", "right_eye_center", "nose_tip", "mouth_left", "mouth_right"),
    len(LANDMARKS): LANDMARKS,
}


def point_indices(detector, num_points: int) -> tuple[tuple[str, ...], torch.Tensor]:
    """The names and indices of the landmark set of `num_points` points of `detector` (see eval.detectors)."""
    sets = getattr(detector, "point_sets", POINT_SETS)
    all_names = tuple(getattr(detector, "landmark_names", LANDMARKS))
    if num_points not in sets:
        raise ValueError(f"num_points must be one of {sorted(sets)} for this detector, got {num_points}")
    names = tuple(sets[num_points])
    return names, torch.tensor([all_names.index(n) for n in names])


@dataclass
class DetectionRateResult:
    rate: float  # share of samples with every landmark detected
    per_landmark: dict[str, float]  # share of samples on which each landmark is detected
    num_samples: int
    truncation_psi: float
    detection: Detection | None = field(default=None, repr=False)  # the detector's output on the samples


def detection_rate(G: Generator, detector: LandmarkDetector, *, num_samples: int = 256, seed: int = 0,
                   truncation_psi: float = 0.7) -> DetectionRateResult:
    """Detect the landmarks of `num_samples` generated faces (seeds seed, seed+1, ...)."""
    imgs = synthesize(G, latents_from_seeds(G, range(seed, seed + num_samples), truncation_psi))
    det = detector(imgs)
    return DetectionRateResult(rate=float(det.detected.all(dim=1).float().mean()),
                               per_landmark={n: float(det.detected[:, i].float().mean()) for i, n in enumerate(LANDMARKS)},
                               num_samples=num_samples, truncation_psi=truncation_psi, detection=det)


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
    tracker: str = "draggan"  # the point tracker inside the drag loop (the method's name: its own localisation)
    seconds_per_edit: float = float("nan")  # mean wall time of one drag (not counting detection)
    change_outside: float = float("nan")  # mean pixel change away from the paths ([0, 1] images; eval.locality)
    lpips_outside: float | None = None  # LPIPS of that change (None without LPIPS weights)
    locality_margin_px: float = float("nan")  # the margin around the handle -> target paths
    pairs: list[dict] = field(default_factory=list)  # seeds and distances of each pair
    images_before: torch.Tensor | None = field(default=None, repr=False)  # [P, 3, H, W] first faces (for FID)
    images_after: torch.Tensor | None = field(default=None, repr=False)  # [P, 3, H, W] their edits
    examples: list[dict] = field(default_factory=list, repr=False)  # the first pairs' drags, frame by frame


@dataclass
class FacePairs:
    """Pairs of generated faces whose chosen landmarks are all detected."""

    ws: torch.Tensor  # [M, num_ws, w_dim] latents of every candidate face
    landmarks: torch.Tensor  # [M, L, 2] detected (x, y) landmarks of every candidate
    seeds: list[int]  # seed of each candidate
    pairs: list[tuple[int, int]]  # (a, b) candidate indices: drag a's landmarks to b's


def face_pairs(G: Generator, detector: LandmarkDetector, names: Sequence[str], *, num_pairs: int, seed: int = 0,
               truncation_psi: float = 0.7) -> FacePairs:
    """Candidates are seeds seed, seed+1, ...; faces without every landmark of `names` detected are
    passed over (as a face detector would fail on them); consecutive valid faces make a pair."""
    all_names = tuple(getattr(detector, "landmark_names", LANDMARKS))
    idx = torch.tensor([all_names.index(n) for n in names])
    seeds, ws_parts, lm_parts, valid = [], [], [], []
    limit = 20 * num_pairs  # candidate faces at most
    while len(valid) < 2 * num_pairs and len(seeds) < limit:
        chunk = list(range(seed + len(seeds), seed + len(seeds) + 2 * num_pairs))
        ws = latents_from_seeds(G, chunk, truncation_psi)
        det = detector(synthesize(G, ws))
        ok = det.detected[:, idx].all(dim=1)
        valid += [len(seeds) + i for i in range(len(chunk)) if ok[i]]
        seeds += chunk
        ws_parts.append(ws)
        lm_parts.append(det.landmarks)
    if len(valid) < 2 * num_pairs:
        raise RuntimeError(f"only {len(valid)} of {len(seeds)} generated faces have the landmarks {tuple(names)} "
                           f"detected; {2 * num_pairs} are needed")
    return FacePairs(ws=torch.cat(ws_parts), landmarks=torch.cat(lm_parts), seeds=seeds,
                     pairs=[(valid[2 * k], valid[2 * k + 1]) for k in range(num_pairs)])


def landmark_manipulation(G: Generator, detector: LandmarkDetector, drag_config: DragConfig, *,
                          num_points: int = 1,  # a key of the detector's point sets (1, 5 or all landmarks)
                          num_pairs: int = 30,  # pairs of faces
                          seed: int = 0,  # candidate faces are seeds seed, seed+1, ...
                          truncation_psi: float = 0.7,
                          tracker=None,  # an eval.trackers.Tracker inside the loop; None = DragGAN's own
                          keep_images: bool = False,  # keep the first faces and their edits (for FID)
                          examples: int = 0,  # record the drags of this many first pairs, frame by frame
                          locality_margin: float | None = None,  # px around the paths (None: eval.locality's default)
                          lpips=None,  # LPIPS callable for the locality (None: pixel change only)
                          progress: bool = True,
                          shard: Shard = Shard()) -> LandmarkManipulationResult:  # drag only this shard's pairs
    """Drag face A's landmarks to face B's for `num_pairs` pairs; MD after the edit and without it, and the
    change of the image outside `locality_margin` px of the handle -> target paths."""
    names, idx = point_indices(detector, num_points)
    margin = default_margin(G.img_height) if locality_margin is None else float(locality_margin)
    t0 = time.perf_counter()
    with phase(f"landmarks: choosing {num_pairs} pairs of faces", enabled=progress):
        fp = face_pairs(G, detector, names, num_pairs=num_pairs, seed=seed, truncation_psi=truncation_psi)
    points = fp.landmarks
    pairs, edit_d, none_d, steps, reached, times, before, after_imgs, recorded = [], [], [], [], [], [], [], [], []
    localities = []
    label = tracker.name if tracker is not None else drag_config.method  # the in-loop tracker, or the method's own
    mine = [(i, ab) for i, ab in enumerate(fp.pairs) if shard.owns(i)]
    for i, (a, b) in tqdm(mine, desc=f"landmarks ({num_points} pt, {label})", disable=not progress, dynamic_ncols=True):
        handles = points[a, idx].tolist()
        targets = points[b, idx].tolist()
        t_edit = time.perf_counter()
        session = DragSession(G, fp.ws[a:a + 1], handles, targets, config=drag_config,
                               tracker=None if tracker is None else in_loop(tracker))
        frames = DragFrames.from_start(session) if i < examples else None
        result = session.run(callback=frames.callback() if frames is not None else None)
        times.append(time.perf_counter() - t_edit)  # (with frame recording for the examples)
        if frames is not None:
            recorded.append(dict(seed_a=fp.seeds[a], seed_b=fp.seeds[b], handles=handles, targets=targets,
                                 frames=frames.pictures(), target_image=synthesize(G, fp.ws[b:b + 1])))
        edited = result.image.clamp(-1, 1)
        after = detector(edited)
        d_edit = (after.landmarks[0, idx] - points[b, idx]).norm(dim=-1).mean().item()
        d_none = (points[a, idx] - points[b, idx]).norm(dim=-1).mean().item()
        edit_d.append(d_edit)
        none_d.append(d_none)
        steps.append(len(result.history))
        reached.append(result.done)
        first = synthesize(G, fp.ws[a:a + 1]).clamp(-1, 1)
        allowed = path_region((G.img_height, G.img_width), handles, targets, margin)
        loc = edit_locality(first, edited, allowed, lpips=lpips)
        localities.append(loc)
        if keep_images:
            before.append(first.cpu())
            after_imgs.append(edited.cpu())
        pairs.append(dict(pair=i, seed_a=fp.seeds[a], seed_b=fp.seeds[b], md_edit=d_edit, md_no_edit=d_none,
                          steps=len(result.history), reached=bool(result.done), seconds=times[-1],
                          detected_after=bool(after.detected[0, idx].all()), change_outside=loc.change_outside,
                          change_inside=loc.change_inside, lpips_outside=loc.lpips_outside))
    md_edit, md_none = float(np.mean(edit_d)), float(np.mean(none_d))
    return LandmarkManipulationResult(num_points=num_points, landmarks=names, num_pairs=num_pairs, md_edit=md_edit,
                                      md_no_edit=md_none, ratio=md_edit / max(md_none, 1e-12),
                                      steps_mean=float(np.mean(steps)), reached=float(np.mean(reached)),
                                      seconds=time.perf_counter() - t0, tracker=label,
                                      seconds_per_edit=float(np.mean(times)),
                                      change_outside=mean_change([x.change_outside for x in localities]),
                                      lpips_outside=None if lpips is None else
                                      float(np.mean([x.lpips_outside for x in localities])),
                                      locality_margin_px=margin, pairs=pairs,
                                      images_before=torch.cat(before) if keep_images else None,
                                      images_after=torch.cat(after_imgs) if keep_images else None,
                                      examples=recorded)
