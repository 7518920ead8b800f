"""The drag edit as one function of a config: what `scripts/drag.py` runs.

Writes into the output folder: `before.png`, `after.png`, `drag.gif` (or `.mp4`) of the trajectory
with handles (red) and targets (blue), `session.json` and `latent.npz` (see `draggan.session_io`),
and `results.json`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.drag import DragConfig, DragSession
from draggan.files import read_json
from draggan.image_io import read_mask
from draggan.limits import check_points
from draggan.loading import load_generator
from draggan.render import draw_points, points_scale, save_animation, save_png, to_uint8
from draggan.session_io import load_session, save_session

log = logging.getLogger(__name__)


def parse_points(points: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """`[[x, y, tx, ty], ...]` (or a JSON file of it) -> (handles, targets); at most MAX_POINTS pairs."""
    if isinstance(points, (str, os.PathLike)):
        path = Path(points)
        if not path.is_file():
            raise ValueError(f"points: {points!r} is neither a list [[x, y, tx, ty], ...] nor an existing JSON file")
        points = read_json(path)
    try:
        check_points(len(points))
        rows = [list(map(float, p)) for p in points]
    except (TypeError, ValueError) as e:
        raise ValueError(f"points must be a non-empty list of [x, y, tx, ty]: {e}") from None
    if not rows or any(len(r) != 4 for r in rows):
        raise ValueError(f"points must be a non-empty list of [x, y, tx, ty], got {points!r}")
    return [(r[0], r[1]) for r in rows], [(r[2], r[3]) for r in rows]


def load_mask(path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
    """A mask image (white = allowed to move) of the image's size (H, W) as a boolean [H, W] array; its size
    is read from the header before it is decoded (`draggan.image_io.read_mask`)."""
    return read_mask(path, (size[1], size[0]))


def initial_latent(G, seed: int, truncation_psi: float) -> torch.Tensor:
    """W+ latent of `seed` (z from numpy's RandomState, as the official tools draw it)."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).to(device, torch.float32)
    c = torch.zeros([1, G.c_dim], device=device) if G.c_dim else None
    with torch.no_grad():
        return G.mapping(z, c, truncation_psi=truncation_psi)


def drag_config_from(cfg) -> DragConfig:
    """The drag settings of a composed config: the `drag` group, then the generator's own overrides."""
    settings = {f.name: cfg.drag[f.name] for f in dataclasses.fields(DragConfig)}
    overrides = dict(cfg.generator.get("drag_overrides") or {})
    if cfg.generator.feature_block is not None:
        overrides["feature_block"] = cfg.generator.feature_block
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"generator.drag_overrides has unknown drag settings: {sorted(unknown)}")
    defaults = DragConfig()
    for key, value in overrides.items():
        if settings[key] != getattr(defaults, key) and settings[key] != value:
            log.warning("the generator config sets drag.%s=%s, replacing drag.%s=%s; to change it for this "
                        "generator, set generator.drag_overrides.%s (or generator.feature_block)",
                        key, value, key, settings[key], key)
    settings.update(overrides)
    return DragConfig(**settings)


def run_drag(cfg, out_dir: str | os.PathLike = ".") -> dict:
    """Edit one image as configured; returns the results written to `results.json`."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    G = load_generator(cfg.generator.source, device=None if cfg.device == "auto" else cfg.device)
    config = drag_config_from(cfg)
    if cfg.resume:
        session = load_session(cfg.resume, G)
        if cfg.rollback_to is not None:
            session.rollback(int(cfg.rollback_to))
    else:
        handles, targets = parse_points(cfg.points)
        ws = initial_latent(G, cfg.seed, cfg.truncation_psi)
        mask = load_mask(cfg.mask, (G.img_height, G.img_width)) if cfg.mask else None
        session = DragSession(G, ws, handles, targets, mask=mask, config=config)
    return edit_and_save(session, out, generator_name=str(cfg.generator.source), max_steps=config.max_steps,
                         frame_every=cfg.frame_every, video=cfg.video, progress=cfg.progress)


def edit_and_save(session: DragSession, out_dir: str | os.PathLike, *, generator_name: str,
                  max_steps: int | None = None, frame_every: int = 2, video: str = "gif", progress: bool = True) -> dict:
    """Run `session` (up to `max_steps` more steps, default its config's) and write every output of a drag
    edit into `out_dir` (results.json last)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G, config = session.G, session.config
    targets = [tuple(t) for t in session.targets_xy.tolist()]
    scale = points_scale(G.img_height, G.img_width)
    before = to_uint8(session.render())
    save_png(before, out / "before.png")
    frames = [draw_points(before, session.handles, targets, scale)]
    save_png(frames[0], out / "before_points.png")

    def on_step(state, s):
        if state.step % frame_every == 0 or state.done:
            frames.append(draw_points(to_uint8(s.render()), state.handles, targets, scale))

    start = time.perf_counter()
    result = session.run(max_steps=config.max_steps if max_steps is None else max_steps, callback=on_step,
                         progress=progress)
    seconds = time.perf_counter() - start
    after = to_uint8(result.image)
    save_png(after, out / "after.png")
    save_png(draw_points(after, result.handles, targets, scale), out / "after_points.png")
    frames.append(draw_points(after, result.handles, targets, scale))
    animation = save_animation(frames, out / f"drag.{video}")
    save_session(session, out, generator=generator_name)
    errors = [s.error for s in result.history if s.error]
    results = {"steps": len(result.history), "done": result.done, "seconds": seconds,
               "final_handles": result.handles, "targets": targets,
               "final_distances": result.history[-1].distances if result.history else [],
               "error": errors[-1] if errors else None,
               "files": {k: str(out / v) for k, v in [("before", "before.png"), ("after", "after.png"),
                                                      ("animation", animation.name), ("session", "session.json"),
                                                      ("latent", "latent.npz")]}}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results
