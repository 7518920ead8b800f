"""The hook that puts another point tracker inside DragGAN's loop (the paper's ablation of its tracking).

`DragSession(..., tracker=...)` takes a `PointTracker`: called once per step after the first with a
`TrackingStep`, it returns where the handles are now. Methods with their own localisation refuse one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class TrackingStep:
    """What a `PointTracker` is given at a step of a `DragSession` (every step but the first)."""

    features: torch.Tensor  # [1, C, h, w] the feature block at the current latent (detached)
    handles: torch.Tensor  # [N, 2] (x, y) the handles before this step's tracking, on the generator's device
    start_handles: torch.Tensor  # [N, 2] (x, y) where the handles were placed (the queries of the first image; host)
    reference_features: torch.Tensor  # [N, C] the handles' features in the first image (resized to the image)
    size: tuple[int, int]  # (H, W) of the image
    image: Callable[[], torch.Tensor]  # renders the full image at the current latent, [1, C, H, W] in [-1, 1]
    start_image: Callable[[], torch.Tensor]  # renders the first image of the session


class PointTracker(Protocol):
    """Replaces the point tracking, step (2), of a `DragSession` with DragGAN's method.

    Called once per step after the first, with a `TrackingStep`; returns where the handles are now,
    [N, 2] (x, y) pixels (a tensor or an array), in the order of `step.handles`. The session clamps them to
    the image and refuses a wrong shape or non-finite values. A tracker may keep state across the steps of
    one session (the frames so far, say), so each session needs a fresh one.
    """

    def __call__(self, step: TrackingStep) -> torch.Tensor | np.ndarray: ...
