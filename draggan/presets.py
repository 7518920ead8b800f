"""The named presets of the drag settings, shared by every method unless a method declares its own.

A preset is a set of `DragConfig` values on top of its defaults (the paper's settings, Pan et al. 2023):

- `paper`: the defaults themselves;
- `official`: what the official DragGAN implementation does, step for step (its L2 tracking, lr 1e-3, radius
  rounding, stop rule and pixel grid);
- `recommended`: the library's rules (below), then the settings the model registry gives the generator.

A method's class may replace any of them (`DragMethod.presets`); FreeDrag's `official`, say, is its authors' code.
Where each rule comes from, with the measurements that chose it: docs/evaluation.md ("Defaults that transfer").
"""

from __future__ import annotations

from typing import Any

PRESET_NAMES = ("recommended", "paper", "official")
MODEL_PRESET = "recommended"  # the preset that takes the registry's settings for the generator (draggan/registry.py)
DEFAULT_METHOD = "freedrag"  # the library's default method (`recommended`, no config, the commands, the editor)
PAPER_METHOD = "draggan"  # the method that `paper` and `official` describe, when no method is named

PAPER: dict[str, Any] = {}
OFFICIAL: dict[str, Any] = dict(tracking_distance="l2", lr=1e-3, min_radius=None, official_stop_rule=True,
                                official_grid=True)
# The library's rules for every generator: radii in cells of the feature map (the paper's 3 and 12 px at 512 px
# with its 128x128 block are 0.75 and 3 cells), a per-handle stop for many handles (a handle not closer for 30 steps
# is given up), a squared mask term relative to the first features' RMS that does not hold the features within one
# cell of the movable region, and below 128 px the small-generator rule (`SMALL_GENERATOR`).
RECOMMENDED: dict[str, Any] = dict(radius_unit="cells", r1=0.75, r2=3.0, handle_stop="each", handle_patience=30,
                                   mask_loss="l2", mask_margin=1.0, small_generator_rule=True)
SHARED_PRESETS: dict[str, dict[str, Any]] = {"paper": PAPER, "official": OFFICIAL, "recommended": RECOMMENDED}

# `small_generator_rule`: below 128 px (no block 5) these replace the paper's lr and stop distance where those are
# left at the paper's values. Handles sit on whole pixels after tracking, and the pixel nearest a target between
# pixels is up to sqrt(1/2) px from it, so the drag stops within half a pixel's diagonal of the target.
ON_TARGET_PIXEL = 0.71  # px
SMALL_GENERATOR: dict[str, Any] = dict(lr=1e-2, stop_distance=ON_TARGET_PIXEL)


def default_method(preset: str) -> str:
    """The method a preset runs when none is named: the library's default for `recommended`, DragGAN otherwise."""
    return DEFAULT_METHOD if preset == "recommended" else PAPER_METHOD
