"""Point conventions, in one place.

Points are float `(x, y)` in pixels of the generator's output image, origin at the centre of the
top-left pixel: x grows to the right (columns), y grows downwards (rows). Every conversion to
`[row, col]` order or to the normalised coordinates of `grid_sample` is here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def as_points(points: Sequence[Sequence[float]] | torch.Tensor, name: str = "points") -> torch.Tensor:
    """`points` as a float64 tensor [N, 2] of (x, y); raises ValueError on a wrong shape or NaN."""
    t = torch.as_tensor(points, dtype=torch.float64)
    if t.ndim != 2 or t.shape[1] != 2:
        raise ValueError(f"{name} must be a list of (x, y) pairs, got shape {list(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contain NaN or infinite coordinates")
    return t


def check_inside(points: torch.Tensor, height: int, width: int, name: str = "points") -> None:
    """Raise ValueError unless every (x, y) lies inside a `height` x `width` image."""
    bad = (points[:, 0] < 0) | (points[:, 0] > width - 1) | (points[:, 1] < 0) | (points[:, 1] > height - 1)
    if bad.any():
        i = int(bad.nonzero()[0])
        x, y = points[i].tolist()
        raise ValueError(f"{name}[{i}] = ({x:g}, {y:g}) lies outside the {width}x{height} image "
                         f"(x must be in [0, {width - 1}], y in [0, {height - 1}])")


def xy_to_rc(points: torch.Tensor) -> torch.Tensor:
    """(x, y) -> (row, col)."""
    return points.flip(-1)


def rc_to_xy(points: torch.Tensor) -> torch.Tensor:
    """(row, col) -> (x, y)."""
    return points.flip(-1)


def normalized_to_pixels(g: torch.Tensor, size: int) -> torch.Tensor:
    """Unnormalise `grid_sample` coordinates (align_corners=True) to pixels of an axis of `size`."""
    return (g + 1) / 2 * (size - 1)


def pixels_to_normalized(p: torch.Tensor, size: int) -> torch.Tensor:
    """Pixels of an axis of `size` to `grid_sample` coordinates (align_corners=True)."""
    return p / (size - 1) * 2 - 1
