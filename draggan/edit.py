"""The drag edit as one function of a config: what `scripts/drag.py` runs.

Writes into the output folder the run of `draggan.session_io.save_run` (`before.png`, `after.png`, `drag.gif`
(or `.mp4`) of the trajectory with handles (red) and targets (blue), `session.json` and `latent.npz`), and
`results.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from draggan.configs import drag_config_from, given_drag_settings
from draggan.image_io import load_mask
from draggan.latents import initial_latent
from draggan.loading import load_generator
from draggan.points import parse_points
from draggan.registry import DEFAULT_MODEL
from draggan.render import DragFrames, points_scale, to_uint8
from draggan.session import DragSession
from draggan.session_io import json_safe, load_session, read_session_meta, save_run
from draggan.settings import DragConfig
from draggan.threads import synthesis_macs, use_threads

RUN_SETTINGS = ("max_steps", "stall_steps")  # drag settings that a resumed session takes from the command line


def run_drag(cfg, out_dir: str | os.PathLike = ".") -> dict:
    """Edit one image as configured; returns the results written to `results.json`.

    With `cfg.resume` (a saved run folder), the saved session continues, first rolled back to `cfg.rollback_to`
    if given, with its own points, mask and drag settings (only `drag.max_steps` applies); with new `cfg.points` a
    new segment starts where the saved session is (after the roll-back), with the configured drag settings (a
    setting that differs from the saved one without new points is refused: it would have no effect). Either
    way `before.png` is the start of the session this run writes, and the GIF shows this run's steps.
    """
    if cfg.rollback_to is not None and not cfg.resume:
        raise ValueError(f"rollback_to={cfg.rollback_to} rolls back a saved session: give resume=<its run folder> too")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    generator = cfg.generator or (saved_generator(cfg.resume) if cfg.resume else DEFAULT_MODEL)
    G = load_generator(generator, device=None if cfg.device == "auto" else cfg.device)
    use_threads(cfg.threads, work_macs=synthesis_macs(G))  # the command's threads= (a drag on a small model: 1)
    config = drag_config_from(cfg, generator)
    extra = {}
    if cfg.resume:
        session = load_session(cfg.resume, G)
        if cfg.rollback_to is not None:
            last = len(session.history) - 1
            if not -1 <= int(cfg.rollback_to) <= last:
                raise ValueError(f"rollback_to={cfg.rollback_to}: the saved session has steps 0 to {last}; give one "
                                 "of them, or -1 for its start")
            session.rollback(int(cfg.rollback_to))
        if cfg.points:  # a new segment from the saved session's current state
            handles, targets = parse_points(cfg.points)
            mask = (load_mask(cfg.mask, (G.img_height, G.img_width)) if cfg.mask else
                    None if session.mask is None else session.mask.cpu().numpy())
            session = DragSession(G, session.ws.detach(), handles, targets, mask=mask, config=config)
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
        session = DragSession(G, ws, handles, targets, mask=mask, config=config)
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
    edit into `out_dir` (`draggan.session_io.save_run`, then results.json last): `before.png` is the session's
    start (its first latent, also when it was resumed at a later step), the GIF runs from the state this call
    starts at."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = session.config
    targets = [tuple(t) for t in session.targets_xy.tolist()]
    before = to_uint8(session.render(session.ws0))
    frames = DragFrames(points_scale(*session.size))
    frames.add(len(session.history), before if not session.history else to_uint8(session.render()),
               session.handles, targets)
    start = time.perf_counter()
    result = session.run(max_steps=config.max_steps if max_steps is None else max_steps,
                         callback=frames.callback(every=frame_every), progress=progress)
    seconds = time.perf_counter() - start
    after = to_uint8(result.image)
    frames.add(len(result.history), after, result.handles, targets)
    files = save_run(session, out, generator=generator_name, frames=frames, video=video, before=before, after=after)
    errors = [s.error for s in result.history if s.error]
    results = {"steps": len(result.history), "done": result.done, "seconds": seconds,
               "final_handles": result.handles, "targets": targets,
               "final_distances": result.history[-1].distances if result.history else [],
               "error": errors[-1] if errors else None, "stalled": result.stalled,
               "adaptations": session.adaptations, **(extra_results or {}),
               "files": {k: str(files[k]) for k in ("before", "after", "animation", "session", "latent")}}
    (out / "results.json").write_text(json.dumps(json_safe(results), indent=1))
    return results
