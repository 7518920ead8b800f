"""Edit locality: how much of the image changed where the edit gave it no reason to.

A point-based edit asks for content to move along the handle -> target paths (Pan et al. 2023; the mask,
when given, names the region allowed to move). Mean distance to the targets says whether it moved;
it does not say what else changed: a faster or more aggressive setting can reach the targets by
changing the whole image. This measure is the change outside the allowed region, which is
- the pixels within `margin_px` of any handle -> target segment (the content that must move, and the
  neighbourhood that moves with it), together with
- the user's mask (the region allowed to move), where one was given.

Reported: the mean absolute change of the pixels outside (on [0, 1] images, averaged over channels),
the same inside for scale, and LPIPS (Zhang et al., CVPR 2018) between the first image and the edited
image with its allowed region put back to the first image's pixels, so that only the change outside
counts (when LPIPS weights are present; see `inversion.lpips_loss.load_lpips`). Smaller is more local.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

MARGIN_FRACTION = 0.125  # default margin around the paths: 1/8 of the image height (8 px at 64 px, 64 px at 512)


def default_margin(height: int) -> float:
    """The default margin (pixels) around the handle -> target paths for an image `height` pixels high."""
    return MARGIN_FRACTION * height


def path_region(size: tuple[int, int], handles_xy: Sequence[Sequence[float]], targets_xy: Sequence[Sequence[float]],
                margin_px: float, mask: np.ndarray | None = None) -> np.ndarray:
    """[H, W] bool: True where the edit may change the image.

    Args:
        size: (H, W) of the image.
        handles_xy, targets_xy: N (x, y) pixel points each; pixel (x, y) is allowed when its distance to
            the segment from handle i to target i is at most `margin_px`, for some i.
        margin_px: the margin, >= 0.
        mask: optional [H, W] bool, True where the user allows motion; added to the allowed region.
    Returns:
        The allowed region.
    """
    h = np.asarray(handles_xy, np.float64).reshape(-1, 2)
    t = np.asarray(targets_xy, np.float64).reshape(-1, 2)
    if h.shape != t.shape:
        raise ValueError(f"need as many targets as handles, got {len(h)} handles and {len(t)} targets")
    if not np.isfinite(margin_px) or margin_px < 0:
        raise ValueError(f"margin_px must be a finite number >= 0, got {margin_px!r}")
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    allowed = np.zeros((H, W), bool)
    for (hx, hy), (tx, ty) in zip(h, t):
        dx, dy = tx - hx, ty - hy
        length2 = dx * dx + dy * dy
        along = np.clip(((xx - hx) * dx + (yy - hy) * dy) / length2, 0, 1) if length2 > 0 else np.zeros_like(xx)
        allowed |= (xx - hx - along * dx) ** 2 + (yy - hy - along * dy) ** 2 <= margin_px ** 2
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != (H, W):
            raise ValueError(f"mask must have the image's shape {[H, W]}, got {list(mask.shape)}")
        allowed |= mask
    return allowed


@dataclass
class EditLocality:
    change_outside: float  # mean |after - before| outside the allowed region ([0, 1] images, channel mean); nan if none
    change_inside: float  # the same inside it (the edit itself, for scale); nan if none
    lpips_outside: float | None  # LPIPS(before, after with the allowed region reset to before); None without LPIPS
    outside_share: float  # fraction of the image outside the allowed region


def edit_locality(before: torch.Tensor, after: torch.Tensor, allowed: np.ndarray | torch.Tensor, *,
                  lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> EditLocality:
    """The change of `after` against `before` outside (and inside) the `allowed` region.

    Args:
        before, after: [1, C, H, W] images in [-1, 1] (the first image and the edit).
        allowed: [H, W] bool, True where the edit may change the image (`path_region`).
        lpips: a callable on two [B, 3, H, W] images in [-1, 1] returning distances, or None.
    Returns:
        `EditLocality`.
    """
    if before.ndim != 4 or before.shape[0] != 1 or before.shape != after.shape:
        raise ValueError(f"before and after must be [1, C, H, W] of one shape, got {list(before.shape)} "
                         f"and {list(after.shape)}")
    region = torch.as_tensor(np.asarray(allowed, bool) if not torch.is_tensor(allowed) else allowed,
                             device=before.device).to(torch.bool)
    if tuple(region.shape) != tuple(before.shape[-2:]):
        raise ValueError(f"allowed must be [H, W] = {list(before.shape[-2:])}, got {list(region.shape)}")
    change = ((after.float() - before.float()).abs() / 2).mean(dim=1)[0]  # [H, W], [0, 1] image units
    outside = ~region

    def mean_over(where: torch.Tensor) -> float:
        return float(change[where].mean()) if bool(where.any()) else float("nan")

    lpips_value = None
    if lpips is not None:
        keep = region.to(before.dtype)[None, None]
        reset = after * (1 - keep) + before * keep  # only the change outside remains
        with torch.no_grad():
            lpips_value = float(lpips(before, reset).mean())
    return EditLocality(change_outside=mean_over(outside), change_inside=mean_over(region), lpips_outside=lpips_value,
                        outside_share=float(outside.float().mean()))


def mean_change(values: Sequence[float]) -> float:
    """The mean of the edits' `change_outside` that exist (an edit whose region covers the image has none);
    nan when none does."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
