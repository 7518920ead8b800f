"""The stall rule: when a drag has stopped making progress, and what to try.

A pure function of the history, so that the command line, the editor and the evaluation read the same verdict.
It reads the handles each step reports: for methods that track them in the image (DragGAN, StableDrag) a
stalled drag keeps them still; FreeDrag reports its line search's positions, which creep along the line as its
template adapts even when the image cannot change, so the rule rarely fires for it (docs/evaluation.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

STALL_MIN_DECREASE = 0.01  # a loss lower by less than this fraction is no decrease (Adam's steps wobble it)


def stall(history: Sequence[Any], steps: int) -> str | None:
    """Why a drag has stalled, with what to try, or None while it makes progress.

    Stalled: for the last `steps` steps no handle moved and the loss never fell (by `STALL_MIN_DECREASE` of
    it) below its value `steps` steps earlier, and the drag is not done (`history`: `DragState`s). `steps` = 0
    never reports a stall.
    """
    if steps <= 0 or len(history) <= steps or history[-1].done:
        return None
    window = history[-steps - 1:]
    if any(s.handles != window[0].handles for s in window[1:]):
        return None
    start = window[0].loss
    later = [s.loss for s in window[1:] if s.loss is not None and math.isfinite(s.loss)]
    if start is None or not math.isfinite(start) or not later or min(later) < start * (1 - STALL_MIN_DECREASE):
        return None
    return (f"stalled: no handle has moved and the loss has not fallen for {steps} steps "
            f"({max(history[-1].distances):.1f} px left); try a larger mask around the handles and targets "
            "(or none), a larger learning rate, or nearer targets")
