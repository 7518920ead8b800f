"""Features at image positions, point tracking and motion supervision (Pan et al., SIGGRAPH 2023).

The official implementation resizes the feature map of one synthesis block to the full image
size (bilinear, `align_corners=False`) and samples it there. Here the resized map is built only
where the positions needed would take more interpolation taps than it has pixels (many handles on
a small generator): otherwise `resized_features_at` computes the resized map's values at the few
integer pixels that tracking and the loss need, with the same arithmetic as `F.interpolate`, and
`bilinear_at` interpolates between those pixels like `grid_sample(align_corners=True,
padding_mode='zeros')`. The numbers are those of "resize, then sample", at a small fraction of the cost.

Everything is batched over handles (one set of kernels for all of them, whatever their number),
builds its index and weight tensors on the features' device, and never reads a value back to the
host: `track_points` and `motion_supervision_loss` can sit inside a GPU step that synchronises
only once, for the stop rule.
"""

from __future__ import annotations

import torch

from draggan.points import normalized_to_pixels, pixels_to_normalized

RESIZE_TAPS = 4  # source cells per pixel of a bilinear resize


def _needs_full_map(count: int, size: tuple[int, int]) -> bool:
    """Whether `count` positions would take more interpolation taps than resizing the whole map once.

    Then the map is resized like the official code (`F.interpolate` to the image, `grid_sample` in it):
    the same numbers up to float rounding, cheaper with many handles on a small generator (17 handles
    at 64 px); at the paper's sizes (512 px) the tap route is always taken."""
    return RESIZE_TAPS * count > size[0] * size[1]


def _resize_full(feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The whole map resized to the image (`F.interpolate`, bilinear), in float32 at least."""
    wide = feat.to(torch.promote_types(feat.dtype, torch.float32))
    return torch.nn.functional.interpolate(wide, size=tuple(size), mode="bilinear", align_corners=False)


def _grid_sample(full: torch.Tensor, size: tuple[int, int], ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The resized map `full` [1, C, H, W] sampled at float pixels like the official code's `grid_sample`
    (align_corners=True, zeros outside) -> [C, *ys.shape]."""
    H, W = size
    grid = torch.stack([pixels_to_normalized(xs.to(torch.float32), W),
                        pixels_to_normalized(ys.to(torch.float32), H)], dim=-1).reshape(1, 1, -1, 2)
    v = torch.nn.functional.grid_sample(full, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return v.reshape(v.shape[1], *ys.shape)


def _axis_taps(dst: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower and upper source index and the upper weight of bilinear resizing along one axis, as
    `F.interpolate(align_corners=False)` computes them."""
    src = ((dst.to(torch.float32) + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.to(torch.int64)  # src >= 0, so truncation is floor
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    return i0, i1, src - i0.to(torch.float32)


def _gather(feat: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """feat [1, C, h, w] at flat indices (row * w + col) of any shape -> [C, *flat_index.shape].

    One `index_select` (its backward is a single `index_add`), rather than advanced indexing."""
    c = feat.shape[1]
    return feat.reshape(c, -1).index_select(1, flat_index.reshape(-1)).reshape(c, *flat_index.shape)


def _resize_taps(size_in: tuple[int, int], size: tuple[int, int], rows: torch.Tensor, cols: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 flat indices into a [h, w] map and their weights, [4, *rows.shape] each, whose weighted sum is
    `F.interpolate(map, size, mode='bilinear')` at the integer pixels (rows, cols)."""
    h, w = size_in
    y0, y1, ly = _axis_taps(rows, h, size[0])
    x0, x1, lx = _axis_taps(cols, w, size[1])
    ly0, lx0 = 1 - ly, 1 - lx
    return (torch.stack([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1]),
            torch.stack([ly0 * lx0, ly0 * lx, ly * lx0, ly * lx]))


def _weighted_gather(feat: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_k weight[k] * feat[:, index[k]] over the leading tap axis -> [C, *index.shape[1:]].

    One gather and one weighted sum over every tap at once: the weights carry no channel axis, so all
    the interpolation arithmetic happens once per position, and the backward is one multiply and one
    `index_add` (the step's cost with many handles; per-tap products cost 2-3x more on the CPU)."""
    v = _gather(feat, index)  # [C, K, ...]
    return (v * weight).sum(1)  # float32 weights: half-precision features are summed in float32


def resized_features_at(feat: torch.Tensor, size: tuple[int, int], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Values of `F.interpolate(feat, size, mode='bilinear')` at integer pixels (rows, cols).

    Args:
        feat: [1, C, h, w] feature map.
        size: (H, W) of the virtual resized map.
        rows, cols: int64 tensors of the same shape, inside [0, H) and [0, W), on feat's device.
    Returns:
        [C, *rows.shape] features (float32, or feat's dtype if wider).
    """
    if _needs_full_map(rows.numel(), size):
        return _gather(_resize_full(feat, size), rows * size[1] + cols)
    index, weight = _resize_taps(feat.shape[2:], size, rows, cols)
    return _weighted_gather(feat, index, weight)


def _axis_sample_taps(pos: torch.Tensor, in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear interpolation at float positions `pos` of an axis resized from `in_size` to `out_size` cells
    (zero outside [0, out_size - 1]), as 3 source indices and weights, [3, *pos.shape] each.

    The two neighbouring pixels of a position each take 2 source cells; as the resize only enlarges
    (in_size <= out_size), the two pairs overlap in at least one cell, so 3 cells carry it all."""
    c0 = pos.floor()
    f = pos - c0
    c0 = c0.to(torch.int64)
    c1 = c0 + 1
    taps = []
    for c, w in ((c0, 1 - f), (c1, f)):
        w = w * ((c >= 0) & (c <= out_size - 1))  # grid_sample's zero padding
        i0, i1, lam = _axis_taps(c.clamp(0, out_size - 1), in_size, out_size)
        taps += [(i0, w * (1 - lam)), (i1, w * lam)]
    base = taps[0][0]  # the smallest index (the resize is monotone)
    index = torch.stack([(base + k).clamp(max=in_size - 1) for k in range(3)])
    weight = torch.stack([sum(w * (i - base == k) for i, w in taps) for k in range(3)])
    return index, weight


def bilinear_at(feat: torch.Tensor, size: tuple[int, int], ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """The resized map sampled at float pixel positions, as `grid_sample(align_corners=True)` would.

    Positions are taken through the normalised coordinates and back, as the official code does, so
    that rounding agrees; neighbours outside the image contribute zero (`padding_mode='zeros'`).
    Both steps are separable, so each output is a weighted sum of 3 x 3 feature cells (not 4 corners x
    4 resize taps: 16 gathers, the motion loss's cost with many handles). Returns [C, *ys.shape].
    """
    H, W = size
    h, w = feat.shape[2:]
    if h > H or w > W:
        raise ValueError(f"features of {h}x{w} are larger than the image ({H}x{W})")
    if _needs_full_map(ys.numel(), size):
        return _grid_sample(_resize_full(feat, size), size, ys, xs)
    ys = normalized_to_pixels(pixels_to_normalized(ys.to(torch.float32), H), H)
    xs = normalized_to_pixels(pixels_to_normalized(xs.to(torch.float32), W), W)
    iy, wy = _axis_sample_taps(ys, h, H)
    ix, wx = _axis_sample_taps(xs, w, W)
    index = (iy[:, None] * w + ix[None, :]).flatten(0, 1)  # [9, ...]
    weight = (wy[:, None] * wx[None, :]).flatten(0, 1)
    return _weighted_gather(feat, index, weight)


def track_points(feat: torch.Tensor, size: tuple[int, int], handles_rc: torch.Tensor, refs: torch.Tensor,
                 radius: int, distance: str = "l1") -> torch.Tensor:
    """Move each handle to the pixel of its (2r+1)^2 window whose feature is nearest its reference.

    All handles are searched at once; the windows are clipped at the image border.

    Args:
        feat: [1, C, h, w] current features; size: (H, W) of the image.
        handles_rc: [N, 2] (row, col) current handles (rounded to pixels for the window).
        refs: [N, C] reference features of the handles in the first image.
        radius: half-size of the square search window, in image pixels.
        distance: 'l1' (the paper) or 'l2' (the official code).
    Returns:
        [N, 2] (row, col) new handles, integer valued, float32, on feat's device; ties go to the
        first pixel of the window in row-major order.
    """
    if distance not in ("l1", "l2"):
        raise ValueError(f"distance must be 'l1' or 'l2', got {distance!r}")
    H, W = size
    k = 2 * radius + 1
    centre = handles_rc.to(feat.device).round().to(torch.int64)  # [N, 2]
    offsets = torch.arange(-radius, radius + 1, device=feat.device)
    rows = (centre[:, 0, None] + offsets)[:, :, None].expand(-1, k, k)  # [N, k, k]
    cols = (centre[:, 1, None] + offsets)[:, None, :].expand(-1, k, k)
    valid = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    window = resized_features_at(feat, size, rows.clamp(0, H - 1), cols.clamp(0, W - 1))  # [C, N, k, k]
    diff = window - refs.T.to(window.dtype)[:, :, None, None]
    dist = diff.abs().sum(0) if distance == "l1" else torch.linalg.norm(diff, dim=0)  # [N, k, k]
    best = dist.masked_fill(~valid, float("inf")).reshape(len(centre), -1).argmin(dim=1)
    return (centre - radius + torch.stack([best // k, best % k], dim=1)).to(torch.float32)


def pixel_grid(size: tuple[int, int], device: torch.device | str | None = None, official_grid: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The coordinates of the pixel rows and columns that the motion disk is measured on.

    `official_grid` reproduces the official code's grid, `linspace(0, H, H)`, whose spacing is
    H / (H - 1) rather than 1 (it slightly shifts the disk away from the origin); it is computed on
    the CPU, as the official code does, and then moved. Build it once per session, not per step.
    """
    H, W = size
    if official_grid:
        return torch.linspace(0, H, H).to(device), torch.linspace(0, W, W).to(device)
    return torch.arange(H, dtype=torch.float32, device=device), torch.arange(W, dtype=torch.float32, device=device)


def disk_pixels(centers_rc: torch.Tensor, radius: float, size: tuple[int, int],
                grid: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The integer pixels whose distance to each centre is less than `radius`, as fixed-size squares.

    Args:
        centers_rc: [N, 2] (row, col) centres.
        radius: disk radius in pixels; grid: `pixel_grid(size, ...)` (default: the plain grid).
    Returns:
        rows, cols: [N, S, S] int64 pixel squares around each centre (clamped into the image);
        inside: [N, S, S] bool, True for the pixels of the disk (and inside the image).
    """
    H, W = size
    gy, gx = pixel_grid(size, centers_rc.device) if grid is None else grid
    r = int(radius) + 2
    offsets = torch.arange(-r, r + 2, device=centers_rc.device)
    base = centers_rc.floor().to(torch.int64)  # centres are >= 0, so this is the official int()
    rows = base[:, 0, None] + offsets  # [N, S]
    cols = base[:, 1, None] + offsets
    valid = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    rows, cols = rows.clamp(0, H - 1), cols.clamp(0, W - 1)
    yy, xx = gy[rows][:, :, None], gx[cols][:, None, :]
    cr, cc = centers_rc[:, 0, None, None], centers_rc[:, 1, None, None]
    inside = (((yy - cr) ** 2 + (xx - cc) ** 2) ** 0.5 < radius) & valid
    S = len(offsets)
    return rows[:, :, None].expand(-1, S, S), cols[:, None, :].expand(-1, S, S), inside


def motion_supervision_loss(feat: torch.Tensor, size: tuple[int, int], handles_rc: torch.Tensor,
                            targets_rc: torch.Tensor, radius: float, *,
                            grid: tuple[torch.Tensor, torch.Tensor] | None = None,
                            active: torch.Tensor | None = None) -> torch.Tensor:
    """The motion loss, summed over handles: per handle, mean |F(q).detach() - F(q + d)| over the disk q.

    d is the unit vector from the handle to its target; F is the resized feature map, sampled
    bilinearly at q + d. Each handle's mean runs over channels and pixels (the official `l1_loss`).

    Args:
        feat: [1, C, h, w] features (with gradients); size: (H, W) of the image.
        handles_rc, targets_rc: [N, 2] (row, col) handles and targets.
        radius: r1 in image pixels; grid: `pixel_grid(...)` of the session (default: plain grid).
        active: [N] bool, the handles that contribute (default: all).
    Returns:
        A scalar tensor.
    """
    direction = (targets_rc - handles_rc).to(torch.float32)
    direction = direction / (torch.linalg.norm(direction, dim=1, keepdim=True) + 1e-7)
    rows, cols, inside = disk_pixels(handles_rc, radius, size, grid)
    ys, xs = rows + direction[:, 0, None, None], cols + direction[:, 1, None, None]
    if _needs_full_map(rows.numel(), size):  # one resized map for both samplings
        full = _resize_full(feat, size)
        fixed = _gather(full.detach(), rows * size[1] + cols)  # [C, N, S, S]
        moved = _grid_sample(full, size, ys, xs)
    else:
        with torch.no_grad():
            fixed = resized_features_at(feat, size, rows, cols)  # [C, N, S, S]
        moved = bilinear_at(feat, size, ys, xs)
    count = inside.sum(dim=(1, 2)).clamp(min=1) * feat.shape[1]
    per_handle = ((fixed - moved).abs() * inside).sum(dim=(0, 2, 3)) / count  # [N]
    if active is not None:
        per_handle = torch.where(active, per_handle, torch.zeros_like(per_handle))
    return per_handle.sum()


def feature_rms(feat: torch.Tensor) -> torch.Tensor:
    """The RMS of a feature map, a 0-d float32 tensor on its device (the divergence check's and mask term's scale)."""
    return feat.to(torch.float32).square().mean().sqrt()
