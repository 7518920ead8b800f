"""The acceptance gates of the embedded toy-faces model, measured in one call.

- renderer: images per second on one CPU thread (>= 1000 at 64 px);
- detector: mean landmark error on held-out renders (<= 0.5 px at 64 px);
- detection: share of generated samples (truncation 0.7) with every landmark detected (>= 0.9);
- landmark manipulation, 1 point: MD after the drag <= 0.3 x MD without edit.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from draggan.configs import drag_config_from
from draggan.drag import DragConfig
from draggan.latents import z_from_seeds
from draggan.loading import load_generator
from draggan.networks import Generator
from draggan.render import save_sample_grid
from draggan.toyfaces.detector import LandmarkDetector, load_detector
from draggan.toyfaces.renderer import images_per_second, render_seeds
from eval.landmarks import detection_rate, landmark_manipulation

HELD_OUT_SEED = 10 ** 6  # renders for the detector's error use seeds from here (training uses seed streams [seed, i])

THRESHOLDS = dict(renderer_images_per_second=1000.0, detector_error_px=0.5, detection_rate=0.9, md_ratio_1pt=0.3)


def detector_error(detector: LandmarkDetector, *, num_images: int = 256, resolution: int = 64) -> float:
    """Mean distance in pixels between detected and true landmarks on renders the detector never saw."""
    imgs, _, truth = render_seeds(range(HELD_OUT_SEED, HELD_OUT_SEED + num_images), resolution)
    det = detector(imgs)
    return float((det.landmarks - truth).norm(dim=-1).mean())


def measure_gates(G: Generator, detector: LandmarkDetector, drag_config: DragConfig, *, num_samples: int = 256,
                  num_pairs: int = 30, num_renders: int = 256, truncation_psi: float = 0.7, seed: int = 0,
                  progress: bool = True) -> dict:
    """Every gate's value, its threshold and whether it holds, as one JSON-ready dict."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ips = images_per_second(G.img_resolution)
    finally:
        torch.set_num_threads(threads)
    err = detector_error(detector, num_images=num_renders, resolution=G.img_resolution)
    rate = detection_rate(G, detector, num_samples=num_samples, seed=seed, truncation_psi=truncation_psi)
    lm = landmark_manipulation(G, detector, drag_config, num_points=1, num_pairs=num_pairs, seed=seed + num_samples,
                               truncation_psi=truncation_psi, progress=progress)
    values = dict(renderer_images_per_second=ips, detector_error_px=err, detection_rate=rate.rate,
                  md_ratio_1pt=lm.ratio)
    passed = dict(renderer_images_per_second=ips >= THRESHOLDS["renderer_images_per_second"],
                  detector_error_px=err <= THRESHOLDS["detector_error_px"],
                  detection_rate=rate.rate >= THRESHOLDS["detection_rate"],
                  md_ratio_1pt=lm.ratio <= THRESHOLDS["md_ratio_1pt"])
    return dict(values=values, thresholds=THRESHOLDS, passed=passed, all_passed=all(passed.values()),
                md_edit_1pt=lm.md_edit, md_no_edit_1pt=lm.md_no_edit, drag_steps_mean=lm.steps_mean,
                drag_reached=lm.reached, num_samples=num_samples, num_pairs=num_pairs, num_renders=num_renders,
                truncation_psi=truncation_psi, per_landmark_detection=rate.per_landmark,
                drag_config=dataclasses.asdict(drag_config), seconds=time.perf_counter() - t0)


def run_gates(cfg, out_dir) -> dict:
    """The gates of a composed `gates` config; writes `gates.json` and `samples.png` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator(cfg.generator, device="cpu")
    gates = measure_gates(G, load_detector(cfg.detector), drag_config_from(cfg), num_samples=cfg.num_samples,
                          num_pairs=cfg.num_pairs, num_renders=cfg.num_renders, truncation_psi=cfg.truncation_psi,
                          seed=cfg.seed, progress=cfg.progress)
    grid = save_sample_grid(G, z_from_seeds(G, range(64)), out / "samples.png", grid=8,
                            truncation_psi=cfg.truncation_psi)
    gates.update(generator=cfg.generator, sample_grid=str(grid))
    (out / "gates.json").write_text(json.dumps(gates, indent=2))
    return gates
