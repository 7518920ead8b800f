"""The drag edit as one function of a config: what `scripts/drag.py` runs.

Writes into the output folder: `before.png`, `after.png`, `drag.gif` (or `.mp4`) of the trajectory
with handles (red) and targets (blue), `session.json` and `latent.npz` (see `draggan.session_io`),
and `results.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.drag import DragConfig, DragSession
from draggan.methods import make_session
from draggan.files import read_json
from draggan.image_io import read_mask
from draggan.limits import check_points
from draggan.loading import load_generator
from draggan.registry import DEFAULT_MODEL
from draggan.render import draw_points, points_scale, save_animation, save_png, to_uint8
from draggan.session_io import json_safe, load_session, read_session_meta, save_session


def parse_points(points: Any) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """`[[x, y, tx, ty], ...]` (or a JSON file of it) -> (handles, targets); at most MAX_POINTS pairs."""
    if points is None:
        raise ValueError("points are needed: 'points=[[x,y,tx,ty],...]' (a handle at x,y dragged to tx,ty), "
                         "or the path of a JSON file of that list")
    if isinstance(points, (str, os.PathLike)):
        path = Path(points)
        if not path.is_file():
            raise ValueError(f"points: {points!r} is neither a list [[x, y, tx, ty], ...] nor an existing JSON file")
        points = read_json(path)
    try:
        rows = [list(map(float, p)) for p in points]
    except (TypeError, ValueError):
        rows = None
    if not rows or any(len(r) != 4 for r in rows):
        flat = _plain(points) if rows is None and isinstance(points, Sequence) else None
        hint = f"; for one pair write 'points=[[{','.join(map(str, flat))}]]'" if flat and len(flat) == 4 else ""
        raise ValueError(f"points must be a non-empty list of [x, y, tx, ty], got {_plain(points)!r}{hint}")
    check_points(len(rows))
    return [(r[0], r[1]) for r in rows], [(r[2], r[3]) for r in rows]


def _plain(value: Any) -> Any:
    """A composed config's list as a plain list (for messages)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


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


def drag_config_from(cfg, generator: str | None = None) -> DragConfig:
    """The drag settings of a composed config: the preset that `drag=` names (`recommended`, the default: the
    paper's with `generator`'s own, see `DragConfig.for_generator`; `paper`; `official`), then every
    `drag.<setting>` the config gives. `generator` defaults to `cfg.generator`."""
    config = DragConfig.preset(cfg.drag.preset, generator=cfg.generator if generator is None else generator)
    return dataclasses.replace(config, **given_drag_settings(cfg))


RUN_SETTINGS = ("max_steps", "stall_steps")  # drag settings that a resumed session takes from the command line


def given_drag_settings(cfg) -> dict[str, Any]:
    """The `drag.<setting>`s a composed config sets (not left to its preset)."""
    from omegaconf import OmegaConf

    drag = cfg.drag
    return {f.name: OmegaConf.to_container(drag[f.name]) if OmegaConf.is_config(drag[f.name]) else drag[f.name]
            for f in dataclasses.fields(DragConfig) if not OmegaConf.is_missing(drag, f.name)}


def run_drag(cfg, out_dir: str | os.PathLike = ".") -> dict:
    """Edit one image as configured; returns the results written to `results.json`.

    With `cfg.resume` (a saved run folder), the saved session continues, first rolled back to `cfg.rollback_to`
    if given, with its own points, mask and drag settings (only `drag.max_steps` applies); with new `cfg.points` a
    new segment starts where the saved session is (after the roll-back), with the configured drag settings (a
    setting that differs from the saved one without new points is refused: it would have no effect). Either
    way `before.png` is the start of the session this run writes, and the GIF shows this run's steps.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    generator = cfg.generator or (saved_generator(cfg.resume) if cfg.resume else DEFAULT_MODEL)
    G = load_generator(generator, device=None if cfg.device == "auto" else cfg.device)
    config = drag_config_from(cfg, generator)
    extra = {}
    if cfg.resume:
        session = load_session(cfg.resume, G)
        if cfg.rollback_to is not None:
            session.rollback(int(cfg.rollback_to))
        if cfg.points:  # a new segment from the saved session's current state
            handles, targets = parse_points(cfg.points)
            mask = (load_mask(cfg.mask, (G.img_height, G.img_width)) if cfg.mask else
                    None if session.mask is None else session.mask.cpu().numpy())
            session = make_session(G, session.ws.detach(), handles, targets, mask=mask, config=config)
            extra = {"resumed_from": str(cfg.resume), "new_segment": True}
        else:
            wanted = given_drag_settings(cfg)
            if cfg.drag.preset != "recommended":  # a named preset must not be ignored silently either
                wanted = {**dataclasses.asdict(DragConfig.preset(cfg.drag.preset).adapted_to(G)[0]), **wanted}
            differ = [k for k, v in wanted.items() if k not in RUN_SETTINGS and getattr(session.config, k) != v]
            if differ or cfg.mask:
                raise ValueError(f"resume continues the saved session with its own drag settings and mask, so "
                                 f"{', '.join(differ + (['mask'] if cfg.mask else []))} would have no effect; give "
                                 "new 'points=[[x,y,tx,ty]]' to start a new segment with them")
            session.config.stall_steps = config.stall_steps
            extra = {"resumed_from": str(cfg.resume), "new_segment": False}
    else:
        handles, targets = parse_points(cfg.points)
        ws = initial_latent(G, cfg.seed, cfg.truncation_psi)
        mask = load_mask(cfg.mask, (G.img_height, G.img_width)) if cfg.mask else None
        session = make_session(G, ws, handles, targets, mask=mask, config=config)
    return edit_and_save(session, out, generator_name=str(generator), max_steps=config.max_steps,
                         frame_every=cfg.frame_every, video=cfg.video, progress=cfg.progress, extra_results=extra)


def saved_generator(folder: str | os.PathLike) -> str:
    """The generator a saved session names (a file name is taken relative to its folder when it is there)."""
    name = read_session_meta(folder).get("generator") or DEFAULT_MODEL
    local = Path(folder) / name
    return str(local) if local.is_file() else name


def edit_and_save(session: DragSession, out_dir: str | os.PathLike, *, generator_name: str,
                  max_steps: int | None = None, frame_every: int = 2, video: str = "gif", progress: bool = True,
                  extra_results: dict[str, Any] | None = None) -> dict:
    """Run `session` (up to `max_steps` more steps, default its config's) and write every output of a drag
    edit into `out_dir` (results.json last): `before.png` is the session's start (its first latent, also when
    it was resumed at a later step), the GIF runs from the state this call starts at."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    G, config = session.G, session.config
    targets = [tuple(t) for t in session.targets_xy.tolist()]
    scale = points_scale(G.img_height, G.img_width)
    with torch.no_grad():
        before = to_uint8(G.synthesis(session.ws0, noise_mode=config.noise_mode))
    save_png(before, out / "before.png")
    save_png(draw_points(before, session.handles0_xy.tolist(), targets, scale), out / "before_points.png")
    now = before if not session.history else to_uint8(session.render())
    frames = [draw_points(now, session.handles, targets, scale)]

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
               "error": errors[-1] if errors else None, "stalled": result.stalled,
               "adaptations": session.adaptations, **(extra_results or {}),
               "files": {k: str(out / v) for k, v in [("before", "before.png"), ("after", "after.png"),
                                                      ("animation", animation.name), ("session", "session.json"),
                                                      ("latent", "latent.npz")]}}
    (out / "results.json").write_text(json.dumps(json_safe(results), indent=1))
    return results
