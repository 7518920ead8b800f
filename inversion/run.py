"""Inversion as functions of a config: what `scripts/invert.py` and `scripts/edit_real.py` run.

`run_invert` writes into its folder: `target.png` (the photo as the generator sees it),
`projection.png`, `reconstruction.png` (after pivotal tuning, when on), `inversion.npz` (the
pivot `ws`), `generator.safetensors` (the tuned generator, its noise maps included, in the
project's safe format) and `results.json` (PSNR, SSIM and, where LPIPS weights exist, LPIPS of
both reconstructions; whether the photo is inside the generator's domain, `inversion.domain`; wall times; files).
`results.json` is written last; when a step fails, the
files already written are removed, so a folder never looks complete when it is not.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.checkpoint import load_generator_file, save_generator
from draggan.configs import drag_config_from, from_config
from draggan.edit import edit_and_save
from draggan.image_io import load_mask
from draggan.loading import load_generator
from draggan.networks import Generator
from draggan.points import parse_points
from draggan.render import save_png, to_uint8
from draggan.session import DragSession
from draggan.session_io import TUNED_GENERATOR_FILE
from draggan.threads import synthesis_macs, threads_for, use_threads
from inversion.configs import InversionSettings
from inversion.domain import check_domain
from inversion.images import align_face, load_image
from inversion.lpips_loss import LPIPSWeightsError, load_lpips
from inversion.metrics import psnr, ssim
from inversion.projector import apply_noise, project
from inversion.pti import pivotal_tune

INVERSION_FILE = "inversion.npz"
GENERATOR_FILE = TUNED_GENERATOR_FILE  # the tuned generator, under the name that saved sessions use


class _Outputs:
    """Files written so far; removed again if the run fails."""

    def __init__(self, out: Path):
        self.out, self.files = out, []

    def path(self, name: str) -> Path:
        p = self.out / name
        self.files.append(p)
        return p

    def discard(self) -> None:
        for p in self.files:
            if p.exists():
                p.unlink()


def _lpips_or_none(net: str, weights: str | None, device) -> torch.nn.Module | None:
    try:
        return load_lpips(net, weights=weights, device=device)
    except LPIPSWeightsError:
        return None


def invert_image(G: Generator, target: torch.Tensor, s: InversionSettings, *, progress: bool = True,
                 logger=None, callback: Callable[[str, int, int], None] | None = None,
                 threads: int | str | None = "auto") -> dict[str, Any]:
    """Project `target` and (optionally) tune `G` on it: the tuned generator, the pivot and the images.

    `callback(phase, step, num_steps)`, if given, is called after every step of each phase
    ('projection', then 'tuning'). `threads`: torch's CPU threads meanwhile (`draggan.threads`: auto gives a
    small generator's steps one thread; a number a command chose holds; None leaves torch's setting alone).
    """
    with threads_for(threads, work_macs=synthesis_macs(G)):
        return _invert_image(G, target, s, progress=progress, logger=logger, callback=callback)


def _invert_image(G: Generator, target: torch.Tensor, s: InversionSettings, *, progress: bool, logger,
                  callback: Callable[[str, int, int], None] | None) -> dict[str, Any]:
    device = next(G.parameters()).device
    uses_lpips = "lpips" in s.loss
    lpips_proj = load_lpips(s.lpips_net, weights=s.lpips_weights, device=device) if uses_lpips else None
    t0 = time.perf_counter()
    proj = project(G, target, space=s.space, num_steps=s.num_steps, lr=s.lr, loss=s.loss,
                   noise_regularize=s.noise_regularize, initial_noise_factor=s.initial_noise_factor,
                   optimize_noise=s.optimize_noise, w_avg_samples=s.w_avg_samples, lpips_model=lpips_proj,
                   progress=progress, callback=None if callback is None else partial(callback, "projection"))
    t_proj = time.perf_counter() - t0
    G_inv = apply_noise(G, proj.noise)
    tuned_image, t_pti, pti_losses = proj.image, 0.0, []
    if s.pti.enabled:
        lpips_pti = load_lpips(s.pti.lpips_net, weights=s.pti.lpips_weights, device=device) \
            if s.pti.lpips_weight > 0 else None
        t1 = time.perf_counter()
        tuned = pivotal_tune(G_inv, target, proj.ws, num_steps=s.pti.num_steps, lr=s.pti.lr,
                             lpips_weight=s.pti.lpips_weight, l2_weight=s.pti.l2_weight,
                             locality_regularization=s.pti.locality_regularization, lpips_model=lpips_pti,
                             progress=progress, callback=None if callback is None else partial(callback, "tuning"))
        t_pti = time.perf_counter() - t1
        G_inv, tuned_image, pti_losses = tuned.G, tuned.image, tuned.losses
    if logger is not None:
        for i, v in enumerate(proj.losses):
            logger.log({"projection/loss": v, "projection/distance": proj.distances[i]}, i)
        for i, v in enumerate(pti_losses):
            logger.log({"pti/loss": v}, len(proj.losses) + i)
    return dict(G=G_inv, ws=proj.ws, projection=proj.image, reconstruction=tuned_image,
                seconds_projection=t_proj, seconds_pti=t_pti)


def invert_photo(G: Generator, path: str | os.PathLike, s: InversionSettings, *,
                 callback: Callable[[str, int, int], None] | None = None,
                 on_domain: Callable[[dict], None] | None = None) -> tuple[Generator, torch.Tensor]:
    """Read a photo as `G` sees it (`load_target`) and invert it: (tuned G, pivot ws).

    What the web editor calls for an upload; raises `ImageLoadError` for a file that is not a usable image.
    `on_domain(verdict)`, if given, receives `inversion.domain.check_domain`'s verdict on the photo (its `warning`
    is the line to show when the photo is outside the generator's domain).
    """
    target = load_target(path, G, s)
    inv = invert_image(G, target, s, progress=False, callback=callback)
    if on_domain is not None:
        on_domain(check_domain(getattr(G, "model_name", None), s.loss, psnr(inv["projection"], target),
                               num_steps=s.num_steps))
    return inv["G"], inv["ws"]


def load_target(path: str | os.PathLike, G: Generator, s: InversionSettings) -> torch.Tensor:
    """The photo as `G` sees it, [1, 3, H, W] on G's device: cropped or padded, or FFHQ-aligned."""
    if s.align_landmarks is not None:
        if G.img_height != G.img_width:
            raise ValueError("face alignment makes square crops; this generator is not square")
        target = align_face(path, list(s.align_landmarks), G.img_height, max_pixels=s.max_pixels)
    else:
        target = load_image(path, G.img_height, G.img_width, fit=s.fit, max_pixels=s.max_pixels)
    return target.to(next(G.parameters()).device)


def reconstruction_metrics(image: torch.Tensor, target: torch.Tensor, lpips_model) -> dict[str, float | None]:
    with torch.no_grad():
        lp = float(lpips_model(image.clamp(-1, 1), target).mean()) if lpips_model is not None else None
    return dict(psnr=psnr(image, target), ssim=ssim(image, target), lpips=lp)


def _say_outside(domain: dict | None) -> None:
    """The domain check's warning on stderr, where the command's user sees it (its stdout is the results); a photo
    that could not be judged, one line saying why."""
    if domain and domain.get("warning"):
        print(f"\n{'!' * 100}\n{domain['warning']}\n{'!' * 100}\n", file=sys.stderr, flush=True)
    elif domain and domain.get("note"):
        print(f"is the photo inside the generator's domain? {domain['note']}", file=sys.stderr, flush=True)


def run_invert(cfg, out_dir: str | os.PathLike, *, logger=None) -> dict:
    """Invert `cfg.image` into `cfg.generator`; write the outputs listed in the module docstring."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files = _Outputs(out)
    try:
        G = load_generator(cfg.generator, device=None if cfg.device == "auto" else cfg.device)
        use_threads(cfg.threads, work_macs=synthesis_macs(G))  # one image: its size sets the work of a step
        s = from_config(InversionSettings, cfg.inversion)
        target = load_target(cfg.image, G, s)
        save_png(to_uint8(target), files.path("target.png"))
        inv = invert_image(G, target, s, progress=cfg.progress, logger=logger)
        save_png(to_uint8(inv["projection"]), files.path("projection.png"))
        save_png(to_uint8(inv["reconstruction"]), files.path("reconstruction.png"))
        np.savez(files.path(INVERSION_FILE), ws=inv["ws"].cpu().numpy())
        domain = check_domain(cfg.generator, s.loss, psnr(inv["projection"], target), num_steps=s.num_steps)
        _say_outside(domain)
        save_generator(inv["G"], files.path(GENERATOR_FILE),
                       extra_metadata={"inverted_from": str(cfg.image), "base_generator": str(cfg.generator),
                                       "outside_domain": str(domain["outside"]).lower()})
        lp = _lpips_or_none("alex", s.pti.lpips_weights, target.device)
        results = dict(
            image=str(cfg.image), generator=str(cfg.generator), domain=domain,
            projection=reconstruction_metrics(inv["projection"], target, lp),
            reconstruction=reconstruction_metrics(inv["reconstruction"], target, lp),
            lpips_note=None if lp is not None else "LPIPS not measured: AlexNet weights not available",
            seconds_projection=inv["seconds_projection"], seconds_pti=inv["seconds_pti"],
            files={n: str(out / f) for n, f in [("target", "target.png"), ("projection", "projection.png"),
                                                ("reconstruction", "reconstruction.png"), ("latent", INVERSION_FILE),
                                                ("generator", GENERATOR_FILE)]})
        if logger is not None:
            logger.log({f"reconstruction/{k}": v for k, v in results["reconstruction"].items() if v is not None},
                       s.num_steps + (s.pti.num_steps if s.pti.enabled else 0))
            logger.log_image("reconstruction", out / "reconstruction.png", 0)
        files.path("results.json").write_text(json.dumps(results, indent=1))
        return results
    except BaseException:
        files.discard()
        raise


def load_inversion(folder: str | os.PathLike, device: str | torch.device | None = None) -> tuple[Generator, torch.Tensor]:
    """The tuned generator and the pivot `ws` of a finished `run_invert` folder."""
    folder = Path(folder)
    if not (folder / "results.json").is_file():
        raise FileNotFoundError(f"{folder} holds no finished inversion (results.json is missing)")
    G = load_generator_file(folder / GENERATOR_FILE)
    if device is not None:
        G = G.to(device)
    ws = torch.from_numpy(np.load(folder / INVERSION_FILE)["ws"]).to(next(G.parameters()).device)
    if tuple(ws.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"{folder}: the latent {list(ws.shape)} does not fit the generator "
                         f"[1, {G.num_ws}, {G.w_dim}]")
    return G, ws


def run_edit_real(cfg, out_dir: str | os.PathLike, *, logger=None) -> dict:
    """Invert a photo (or reuse `cfg.inversion_dir`) and drag its points; everything of both commands."""
    out = Path(out_dir).resolve()
    handles, targets = parse_points(cfg.points)  # bad points fail before any work
    if cfg.inversion_dir:
        inv_dir, inverted = Path(cfg.inversion_dir), None
    else:
        inv_dir = out / "inversion"
        inverted = run_invert(cfg, inv_dir, logger=logger)
    G, ws = load_inversion(inv_dir, device=None if cfg.device == "auto" else cfg.device)
    use_threads(cfg.threads, work_macs=synthesis_macs(G))
    mask = load_mask(cfg.mask, (G.img_height, G.img_width)) if cfg.mask else None
    session = DragSession(G, ws, handles, targets, mask=mask, config=drag_config_from(cfg))
    if logger is not None:
        logger.log_config({"drag_settings": session.settings})  # as the run folder's drag_config.yaml
    results = edit_and_save(session, out, generator_name=str(inv_dir / GENERATOR_FILE), frame_every=cfg.frame_every,
                            video=cfg.video, progress=cfg.progress)
    results["inversion"] = inverted if inverted is not None else str(inv_dir)
    results["domain"] = (inverted or json.loads((inv_dir / "results.json").read_text())).get("domain")
    if inverted is None:
        _say_outside(results["domain"])  # a reused inversion of a photo from elsewhere: say it again
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results
