"""Paired image reconstruction (the paper's Table 2, after Endo 2022's protocol).

For each pair: a latent w1 from a seed; w2 = w1 with its first `perturb_rows` W+ rows moved a
fraction `perturb_strength` of the way towards another seed's latent (our choice of perturbation:
the rows the drag optimises, so image 2 is reachable from image 1); the optical flow from image 1
to image 2; `num_points` pixels sampled where the flow moves content at least `min_flow` px and
lands inside the image (default 2 px: the stop distance of a many-point drag, so that no handle has
arrived before the edit starts), as handle -> handle + flow; drag image 1 with them; compare the result with
image 2 (MSE on [0, 1] images, PSNR, LPIPS when its weights exist), next to image 1 against image 2
without an edit; and the edit's locality (`eval.locality`: how much of image 1 changed away from the
handle -> target paths, next to how much image 2 differs from image 1 there: here the target itself
changes away from the sampled points, so not all of that change is unwanted).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from draggan.latents import latents_from_seeds, synthesize
from draggan.networks import Generator
from draggan.render import DragFrames
from draggan.session import DragSession
from draggan.settings import DragConfig
from eval.flow import FlowEstimator
from eval.shards import Shard
from eval.locality import default_margin, edit_locality, mean_change, path_region
from eval.trackers import in_loop
from inversion.metrics import psnr_from_mse


@dataclass
class PairedResult:
    num_pairs: int
    num_points: int
    flow: str
    tracker: str
    mse: float  # mean over pairs of the edited image's MSE to image 2 ([0, 1] images)
    psnr: float  # dB
    lpips: float | None  # None when LPIPS weights are not available
    mse_no_edit: float  # image 1 against image 2
    psnr_no_edit: float
    lpips_no_edit: float | None
    steps_mean: float
    seconds_per_edit: float
    seconds: float
    change_outside: float = float("nan")  # mean pixel change of image 1 away from the paths ([0, 1] images)
    target_change_outside: float = float("nan")  # how much image 2 differs from image 1 there (not all unwanted)
    lpips_outside: float | None = None  # LPIPS of that change (None without LPIPS weights)
    locality_margin_px: float = float("nan")  # the margin around the handle -> target paths
    lpips_note: str | None = None
    pairs: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list, repr=False)  # the first pairs' drags, frame by frame


def perturbed_pair(G: Generator, seed: int, *, truncation_psi: float, perturb_rows: int, perturb_strength: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(w1, w2), each [1, num_ws, w_dim]: w2 moves w1's first rows towards the latent of seed + 10**6."""
    w1, other = latents_from_seeds(G, [seed, seed + 10 ** 6], truncation_psi).split(1)
    w2 = w1.clone()
    w2[:, :perturb_rows] = torch.lerp(w1[:, :perturb_rows], other[:, :perturb_rows], perturb_strength)
    return w1, w2


def sample_flow_points(flow: np.ndarray, num_points: int, rng: np.random.Generator, min_flow: float = 2.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """`num_points` integer pixels (x, y) whose flow is at least `min_flow` px and stays inside the
    image (fewer if fewer qualify; every pixel if none does), and their targets."""
    H, W = flow.shape[:2]
    ys, xs = np.mgrid[0:H, 0:W]
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    ok = (np.hypot(flow[..., 0], flow[..., 1]) >= min_flow) & (tx >= 0) & (tx <= W - 1) & (ty >= 0) & (ty <= H - 1)
    cand = np.flatnonzero(ok)
    if cand.size == 0:
        cand = np.arange(H * W)
    pick = rng.choice(cand, size=min(num_points, cand.size), replace=False)
    handles = np.stack([xs.flat[pick], ys.flat[pick]], 1).astype(np.float32)
    targets = np.stack([np.clip(tx.flat[pick], 0, W - 1), np.clip(ty.flat[pick], 0, H - 1)], 1).astype(np.float32)
    return handles, targets


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((((a + 1) / 2 - (b + 1) / 2) ** 2).mean())


def paired_reconstruction(G: Generator, drag_config: DragConfig, flow: FlowEstimator, *, tracker=None,
                          num_pairs: int = 10, num_points: int = 32, seed: int = 0, truncation_psi: float = 0.7,
                          perturb_rows: int = 6, perturb_strength: float = 0.7, min_flow: float = 2.0,
                          lpips=None, lpips_note: str | None = None, examples: int = 0,
                          locality_margin: float | None = None,  # px around the paths (None: eval.locality's default)
                          progress: bool = True, shard: Shard = Shard()) -> PairedResult:
    """Drag image 1 along `num_points` flow vectors towards image 2, for `num_pairs` pairs.

    `lpips`: a callable on two [B, 3, H, W] images in [-1, 1] (see `inversion.lpips_loss.load_lpips`),
    or None (then `lpips_note` says why it is missing). With `shard`, only its pairs are dragged (each pair's
    points are sampled as one run samples them).
    """
    reason = flow.availability()
    if reason is not None:
        raise RuntimeError(f"flow estimator {flow.name} is unavailable: {reason}")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be at least 1, got {num_pairs}")
    if not 1 <= perturb_rows <= G.num_ws:
        raise ValueError(f"perturb_rows must be in [1, {G.num_ws}], got {perturb_rows}")
    margin = default_margin(G.img_height) if locality_margin is None else float(locality_margin)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    label = tracker.name if tracker is not None else drag_config.method
    pairs, times, steps, examples_out = [], [], [], []
    for k in tqdm(range(num_pairs), desc=f"paired ({label})", disable=not progress, dynamic_ncols=True):
        w1, w2 = perturbed_pair(G, seed + k, truncation_psi=truncation_psi, perturb_rows=perturb_rows,
                                perturb_strength=perturb_strength)
        img1, img2 = synthesize(G, torch.cat([w1, w2])).clamp(-1, 1).split(1)
        field_ = flow(img1[0], img2[0])
        handles, targets = sample_flow_points(field_, num_points, rng, min_flow)
        if not shard.owns(k):
            continue
        t_edit = time.perf_counter()
        session = DragSession(G, w1, handles.tolist(), targets.tolist(), config=drag_config,
                               tracker=None if tracker is None else in_loop(tracker))
        frames = DragFrames.from_start(session) if k < examples else None
        result = session.run(callback=frames.callback() if frames is not None else None)
        if frames is not None:
            examples_out.append(dict(seed=seed + k, handles=handles.tolist(), targets=targets.tolist(),
                                     frames=frames.pictures(), target_image=img2))
        times.append(time.perf_counter() - t_edit)
        steps.append(len(result.history))
        edited = result.image.clamp(-1, 1)
        row = dict(pair=k, seed=seed + k, points=len(handles), flow_mean_px=float(np.hypot(*(targets - handles).T).mean()),
                   mse=_mse(edited, img2), mse_no_edit=_mse(img1, img2), steps=len(result.history),
                   seconds=times[-1])
        row["psnr"], row["psnr_no_edit"] = (psnr_from_mse(max(row[k], 1e-12)) for k in ("mse", "mse_no_edit"))
        if lpips is not None:
            with torch.no_grad():
                row["lpips"] = float(lpips(edited, img2).mean())
                row["lpips_no_edit"] = float(lpips(img1, img2).mean())
        allowed = path_region((G.img_height, G.img_width), handles, targets, margin)
        loc = edit_locality(img1, edited, allowed, lpips=lpips)
        row["change_outside"], row["change_inside"] = loc.change_outside, loc.change_inside
        row["target_change_outside"] = edit_locality(img1, img2, allowed).change_outside  # what image 2 asks there
        if lpips is not None:
            row["lpips_outside"] = loc.lpips_outside
        pairs.append(row)

    def mean(key: str) -> float | None:  # None for LPIPS when it was not measured
        return float(np.mean([p[key] for p in pairs])) if key in pairs[0] else None

    return PairedResult(num_pairs=num_pairs, num_points=num_points, flow=flow.name, tracker=label,
                        mse=mean("mse"), psnr=mean("psnr"), lpips=mean("lpips"), mse_no_edit=mean("mse_no_edit"),
                        psnr_no_edit=mean("psnr_no_edit"), lpips_no_edit=mean("lpips_no_edit"),
                        steps_mean=float(np.mean(steps)), seconds_per_edit=float(np.mean(times)),
                        seconds=time.perf_counter() - t0,
                        change_outside=mean_change([p["change_outside"] for p in pairs]),
                        target_change_outside=mean_change([p["target_change_outside"] for p in pairs]),
                        lpips_outside=mean("lpips_outside"), locality_margin_px=margin,
                        lpips_note=None if lpips is not None else lpips_note,
                        pairs=pairs, examples=examples_out)
