"""Point conventions, in one place.

Points are float `(x, y)` in pixels of the generator's output image, origin at the centre of the
top-left pixel: x grows to the right (columns), y grows downwards (rows). Every conversion to
`[row, col]` order or to the normalised coordinates of `grid_sample` is here, and so is the parsing of
the points a user gives (`parse_points`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from draggan.files import read_json
from draggan.limits import check_points


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
