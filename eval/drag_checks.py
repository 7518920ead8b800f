"""`python scripts/drag_checks.py check=mask|mouth`: two measures of drag quality, from the command line.

- `mask` (`eval.masks.masked_drag`): a landmark dragged with and without a disc mask around it; prints the
  distance left to the target and the motion of the landmarks outside the mask, both ways.
- `mouth` (`eval.mouth.mouth_drag`): the mouth dragged 6 px down, measured by its red pixels; prints the
  share of the distance left (goal <= 0.4 with the default settings), on any toy-faces generator.
"""

from __future__ import annotations

import dataclasses

CHECKS = ("mask", "mouth")


def run_drag_checks(cfg) -> dict:
    """The chosen check on the configured generator; a dict of its mean figures and per-face rows."""
    from draggan.configs import drag_config_from
    from draggan.loading import load_generator
    from draggan.progress import phase
    from draggan.threads import synthesis_macs, threads_for

    if cfg.check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, got {cfg.check!r}")
    G = load_generator(cfg.generator, device="cpu")
    drag = drag_config_from(cfg)
    with phase(f"drag_checks: {cfg.check} on {cfg.num_faces} faces"), \
            threads_for(cfg.threads, work_macs=synthesis_macs(G)):  # one small drag at a time
        out = _check(cfg, G, drag)
    adapted, notes = drag.adapted_to(G)  # what the drags ran with on this generator (block, lr, stop below 128 px)
    out.update(check=cfg.check, generator=cfg.generator, drag=dataclasses.asdict(drag),
               drag_adapted=dataclasses.asdict(adapted), adaptations=notes)
    return out


def _check(cfg, G, drag) -> dict:
    if cfg.check == "mask":
        from draggan.apps.toyfaces.detector import load_detector
        from eval.masks import masked_drag

        result = masked_drag(G, load_detector(), drag, seeds=range(cfg.seed, cfg.seed + cfg.num_faces),
                             landmark=cfg.landmark, also=tuple(cfg.also), offset=tuple(cfg.offset or (0.0, -3.0)),
                             mask_radius=cfg.mask_radius, truncation_psi=cfg.truncation_psi, max_steps=cfg.steps)
        out = dataclasses.asdict(result)
        out["passed"] = result.passed
    else:
        from eval.mouth import mouth_drag

        result = mouth_drag(G, drag, num_faces=cfg.num_faces, seed=cfg.seed, offset=tuple(cfg.offset or (0.0, 6.0)),
                            steps=200 if cfg.steps is None else cfg.steps, truncation_psi=cfg.truncation_psi)
        out = dataclasses.asdict(result)
    return out
