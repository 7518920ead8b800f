"""Features at image positions, point tracking and motion supervision (Pan et al., SIGGRAPH 2023).

The official implementation resizes the feature map of one synthesis block to the full image
size (bilinear, `align_corners=False`) and samples it there. Here the resized map is never built:
`resized_features_at` computes the resized map's values at the few integer pixels that tracking
and the loss need, with the same arithmetic as `F.interpolate`, and `bilinear_at` interpolates
between those pixels like `grid_sample(align_corners=True, padding_mode='zeros')`. The numbers are
those of "resize, then sample", at a small fraction of the cost.
"""

from __future__ import annotations

import torch

from draggan.points import normalized_to_pixels, pixels_to_normalized


def _source_index(dst: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower and upper source index and the upper weight of bilinear resizing, align_corners=False."""
    scale = torch.tensor(in_size / out_size, dtype=torch.float32)
    src = (scale * (dst.to(torch.float32) + 0.5) - 0.5).clamp(min=0)
    i0 = src.to(torch.int64)  # src >= 0, so truncation is floor
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, src - i0.to(torch.float32)


def resized_features_at(feat: torch.Tensor, size: tuple[int, int], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Values of `F.interpolate(feat, size, mode='bilinear')` at integer pixels (rows, cols).

    Args:
        feat: [1, C, h, w] feature map.
        size: (H, W) of the virtual resized map.
        rows, cols: int64 tensors of the same shape, inside [0, H) and [0, W).
    Returns:
        [C, *rows.shape] features.
    """
    _, c, h, w = feat.shape
    y0, y1, ly = _source_index(rows, h, size[0])
    x0, x1, lx = _source_index(cols, w, size[1])
    f = feat[0]
    ly0, lx0 = 1 - ly, 1 - lx
    return ly0 * (lx0 * f[:, y0, x0] + lx * f[:, y0, x1]) + ly * (lx0 * f[:, y1, x0] + lx * f[:, y1, x1])


def bilinear_at(feat: torch.Tensor, size: tuple[int, int], ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The resized map sampled at float pixel positions, as `grid_sample(align_corners=True)` would.

    Positions are taken through the normalised coordinates and back, as the official code does, so
    that rounding agrees; neighbours outside the image contribute zero (`padding_mode='zeros'`).
    Returns [C, *ys.shape].
    """
    H, W = size
    ys = normalized_to_pixels(pixels_to_normalized(ys.to(torch.float32), H), H)
    xs = normalized_to_pixels(pixels_to_normalized(xs.to(torch.float32), W), W)
    y0, x0 = ys.floor(), xs.floor()
    y1, x1 = y0 + 1, x0 + 1
    out = 0
    # nw, ne, sw, se corners with grid_sample's weights, summed in its order.
    for yy, xx, weight in ((y0, x0, (x1 - xs) * (y1 - ys)), (y0, x1, (xs - x0) * (y1 - ys)),
                           (y1, x0, (x1 - xs) * (ys - y0)), (y1, x1, (xs - x0) * (ys - y0))):
        inside = (yy >= 0) & (yy <= H - 1) & (xx >= 0) & (xx <= W - 1)
        r = yy.clamp(0, H - 1).to(torch.int64)
        c = xx.clamp(0, W - 1).to(torch.int64)
        out = out + resized_features_at(feat, size, r, c) * (weight * inside)
    return out


def track_points(feat: torch.Tensor, size: tuple[int, int], handles_rc: torch.Tensor, refs: torch.Tensor,
                 radius: int, distance: str = "l1") -> torch.Tensor:
    """Move each handle to the pixel of its (2r+1)^2 window whose feature is nearest its reference.

    Args:
        feat: [1, C, h, w] current features; size: (H, W) of the image.
        handles_rc: [N, 2] (row, col) current handles (rounded to pixels for the window).
        refs: [N, C] reference features of the handles in the first image.
        radius: half-size of the square search window, in image pixels (clipped at the border).
        distance: 'l1' (the paper) or 'l2' (the official code).
    Returns:
        [N, 2] (row, col) new handles, integer valued; ties go to the first pixel in row-major order.
    """
    H, W = size
    out = torch.empty_like(handles_rc)
    for i, (r, c) in enumerate(handles_rc.round().to(torch.int64).tolist()):
        top, bottom = max(r - radius, 0), min(r + radius + 1, H)
        left, right = max(c - radius, 0), min(c + radius + 1, W)
        rows, cols = torch.meshgrid(torch.arange(top, bottom), torch.arange(left, right), indexing="ij")
        window = resized_features_at(feat, size, rows, cols)  # [C, h, w]
        diff = window - refs[i].reshape(-1, 1, 1)
        dist = diff.abs().sum(0) if distance == "l1" else torch.linalg.norm(diff, dim=0)
        k = int(torch.argmin(dist.reshape(-1)))
        out[i, 0], out[i, 1] = top + k // (right - left), left + k % (right - left)
    return out


def disk_pixels(center_rc: torch.Tensor, radius: float, size: tuple[int, int], official_grid: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer pixels (rows, cols) whose distance to `center_rc` is less than `radius`.

    `official_grid` reproduces the official code's pixel grid, `linspace(0, H, H)`, whose spacing is
    H / (H - 1) rather than 1 (it slightly shifts the disk away from the origin).
    """
    H, W = size
    cr, cc = float(center_rc[0]), float(center_rc[1])
    r = int(radius) + 2
    rows = torch.arange(max(int(cr) - r, 0), min(int(cr) + r + 2, H))
    cols = torch.arange(max(int(cc) - r, 0), min(int(cc) + r + 2, W))
    if official_grid:
        ry = torch.linspace(0, H, H)[rows]
        rx = torch.linspace(0, W, W)[cols]
    else:
        ry, rx = rows.to(torch.float32), cols.to(torch.float32)
    yy, xx = torch.meshgrid(ry, rx, indexing="ij")
    inside = ((yy - cr) ** 2 + (xx - cc) ** 2) ** 0.5 < radius
    ii, jj = torch.meshgrid(rows, cols, indexing="ij")
    return ii[inside], jj[inside]


def motion_supervision_loss(feat: torch.Tensor, size: tuple[int, int], handle_rc: torch.Tensor,
                            target_rc: torch.Tensor, radius: float, official_grid: bool = False) -> torch.Tensor:
    """One handle's motion loss: mean |F(q).detach() - F(q + d)| over the disk q around the handle.

    d is the unit vector from the handle to its target; F is the resized feature map, sampled
    bilinearly at q + d. The mean runs over channels and pixels (the official `l1_loss`).
    """
    direction = (target_rc - handle_rc).to(torch.float32)
    direction = direction / (torch.linalg.norm(direction) + 1e-7)
    rows, cols = disk_pixels(handle_rc, radius, size, official_grid)
    fixed = resized_features_at(feat, size, rows, cols).detach()
    moved = bilinear_at(feat, size, rows + direction[0], cols + direction[1])
    return (fixed - moved).abs().mean()
