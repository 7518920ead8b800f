"""The acceptance gates of the embedded toy-faces models, measured in one call, at the model's size.

- renderer: images per second on one CPU thread (>= 1000 at 64 px); above 64 px, where the trainer
  renders on its device, on `renderer_device` (>= 300; measured on one CPU thread when that is the CPU);
- detector: mean landmark error on held-out renders (<= 0.5 px, at every size: the detector fits at the
  image's size, so its error does not grow with it);
- detection: share of generated samples (truncation 0.7) with every landmark detected (>= 0.9);
- landmark manipulation, 1 point: MD after the drag <= 0.3 x MD without edit (the drag settings are
  the caller's: `drag=paper` gives the paper's block 5 and r1 3 / r2 12 at 512 px, scaled to the size).

Not a gate, reported beside them: a renderer-based stand-in for FID (no Inception weights can be had
here). The detector fits renderer parameters to each image; `param_frechet_distance` is the Frechet
distance between the fitted parameters (normalised to [0, 1]) of the generated samples and of the
held-out renders, so it grows when samples miss the renderer's variety of position, pose, expression
and colour; `residual_samples` against `residual_renders` is how much of an image the fitted face does
not explain (artefacts, smears). It sees only what the renderer can express, unlike FID.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from draggan.apps.toyfaces.detector import (
    Detection,
    LandmarkDetector,
    load_detector,
    normalise_params,
)
from draggan.apps.toyfaces.renderer import images_per_second, render_seeds
from draggan.configs import drag_config_from
from draggan.latents import z_from_seeds
from draggan.loading import load_generator, resolve_device
from draggan.networks import Generator
from draggan.progress import phase
from draggan.threads import synthesis_macs, threads_for
from draggan.render import save_sample_grid
from draggan.settings import DragConfig
from eval.fid import frechet_distance
from eval.landmarks import detection_rate, landmark_manipulation

HELD_OUT_SEED = 10 ** 6  # renders for the detector's error use seeds from here (training uses seed streams [seed, i])

THRESHOLDS = dict(renderer_images_per_second=1000.0, detector_error_px=0.5, detection_rate=0.9, md_ratio_1pt=0.3)
RENDERER_IPS_ABOVE_64 = 300.0  # the renderer's gate above 64 px (on one core, or on the training device)


def thresholds(resolution: int) -> dict[str, float]:
    """The gates' thresholds for a model of `resolution` px."""
    return {**THRESHOLDS, **({} if resolution <= 64 else {"renderer_images_per_second": RENDERER_IPS_ABOVE_64})}


def _held_out_detection(detector: LandmarkDetector, num_images: int, resolution: int
                        ) -> tuple[Detection, torch.Tensor, torch.Tensor]:
    imgs, params, truth = render_seeds(range(HELD_OUT_SEED, HELD_OUT_SEED + num_images), resolution)
    return detector(imgs), params, truth


def detector_error(detector: LandmarkDetector, *, num_images: int = 256, resolution: int = 64) -> float:
    """Mean distance in pixels between detected and true landmarks on renders the detector never saw."""
    det, _, truth = _held_out_detection(detector, num_images, resolution)
    return float((det.landmarks - truth).norm(dim=-1).mean())


def param_frechet_distance(fitted_samples: torch.Tensor, fitted_renders: torch.Tensor) -> float:
    """Frechet distance between two sets of fitted renderer parameters [N, len(PARAMS)], normalised to [0, 1]."""
    return frechet_distance(normalise_params(fitted_samples.float()).numpy().astype(np.float64),
                            normalise_params(fitted_renders.float()).numpy().astype(np.float64))


def measure_gates(G: Generator, detector: LandmarkDetector, drag_config: DragConfig, *, num_samples: int = 256,
                  num_pairs: int = 30, num_renders: int = 256, truncation_psi: float = 0.7, seed: int = 0,
                  renderer_device: str | torch.device = "cpu", progress: bool = True,
                  threads: int | str | None = "auto") -> dict:
    """Every gate's value, its threshold and whether it holds, as one JSON-ready dict. `threads`: see
    draggan.threads (the detector's batches share the cores; one drag at a time on a small model does not)."""
    t0 = time.perf_counter()
    res = G.img_resolution
    limits = thresholds(res)
    renderer_device = torch.device(renderer_device)
    with phase("gates: renderer speed", enabled=progress), threads_for(1):  # one core (a GPU: its host side)
        ips = images_per_second(res, batch=256 if res <= 64 else 64, device=renderer_device)
    with threads_for(threads):
        with phase(f"gates: detector error on {num_renders} held-out renders", enabled=progress):
            det, _, truth = _held_out_detection(detector, num_renders, res)
        err = float((det.landmarks - truth).norm(dim=-1).mean())
        with phase(f"gates: detection rate on {num_samples} samples", enabled=progress):
            rate = detection_rate(G, detector, num_samples=num_samples, seed=seed, truncation_psi=truncation_psi)
    with threads_for(threads, work_macs=synthesis_macs(G)):
        lm = landmark_manipulation(G, detector, drag_config, num_points=1, num_pairs=num_pairs,
                                   seed=seed + num_samples, truncation_psi=truncation_psi, progress=progress)
    values = dict(renderer_images_per_second=ips, detector_error_px=err, detection_rate=rate.rate,
                  md_ratio_1pt=lm.ratio)
    passed = dict(renderer_images_per_second=ips >= limits["renderer_images_per_second"],
                  detector_error_px=err <= limits["detector_error_px"],
                  detection_rate=rate.rate >= limits["detection_rate"],
                  md_ratio_1pt=lm.ratio <= limits["md_ratio_1pt"])
    proxy = dict(param_frechet_distance=param_frechet_distance(rate.detection.params, det.params),
                 residual_samples=float(rate.detection.residual.mean()), residual_renders=float(det.residual.mean()))
    return dict(values=values, thresholds=limits, passed=passed, all_passed=all(passed.values()),
                resolution=res, renderer_device=str(renderer_device), fid_proxy=proxy,
                md_edit_1pt=lm.md_edit, md_no_edit_1pt=lm.md_no_edit, drag_steps_mean=lm.steps_mean,
                drag_reached=lm.reached, num_samples=num_samples, num_pairs=num_pairs, num_renders=num_renders,
                truncation_psi=truncation_psi, per_landmark_detection=rate.per_landmark,
                drag_config=dataclasses.asdict(drag_config), seconds=time.perf_counter() - t0)


def run_gates(cfg, out_dir) -> dict:
    """The gates of a composed `gates` config; writes `gates.json` and `samples.png` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    G = load_generator(cfg.generator, device=device)
    detector = load_detector(cfg.detector, resolution=G.img_resolution, device=device)
    gates = measure_gates(G, detector, drag_config_from(cfg), num_samples=cfg.num_samples,
                          num_pairs=cfg.num_pairs, num_renders=cfg.num_renders, truncation_psi=cfg.truncation_psi,
                          seed=cfg.seed, renderer_device=device if G.img_resolution > 64 else "cpu",
                          progress=cfg.progress, threads=cfg.threads)
    grid = save_sample_grid(G, z_from_seeds(G, range(64)), out / "samples.png", grid=8, truncation_psi=cfg.truncation_psi,
                            scale=max(1, 128 // G.img_resolution))  # faces of at least 128 px, nearest neighbour
    gates.update(generator=cfg.generator, sample_grid=str(grid))
    (out / "gates.json").write_text(json.dumps(gates, indent=2))
    return gates
