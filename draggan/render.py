"""Turning tensors into pictures: PNGs, and GIF/MP4 trajectories with handles and targets drawn."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

HANDLE_COLOR = (230, 40, 40)
TARGET_COLOR = (40, 110, 240)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[1, C, H, W] or [C, H, W] in [-1, 1] -> [H, W, 3] uint8 (the official mapping x * 127.5 + 128)."""
    if img.ndim == 4:
        img = img[0]
    arr = (img.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def points_scale(height: int, width: int) -> int:
    """The whole-number upscaling that makes pictures with points at least about 256 px wide."""
    return max(1, 256 // max(height, width))


def draw_points(image: np.ndarray, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]],
                scale: int = 1) -> Image.Image:
    """The image (upscaled by `scale`) with red handles, blue targets and arrows between them."""
    pil = Image.fromarray(image)
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(pil)
    r = max(3, max(pil.width, pil.height) // 50)
    for (hx, hy), (tx, ty) in zip(handles, targets):
        h = ((hx + 0.5) * scale, (hy + 0.5) * scale)
        t = ((tx + 0.5) * scale, (ty + 0.5) * scale)
        draw.line([h, t], fill=(255, 255, 255), width=max(1, r // 2))
        draw.ellipse([t[0] - r, t[1] - r, t[0] + r, t[1] + r], fill=TARGET_COLOR)
        draw.ellipse([h[0] - r, h[1] - r, h[0] + r, h[1] + r], fill=HANDLE_COLOR)
    return pil


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike) -> Path:
    path = Path(path)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path)
    return path


def save_animation(frames: Sequence[Image.Image], path: str | os.PathLike, fps: int = 10) -> Path:
    """A GIF (or MP4, by the file's suffix) of `frames`; the last frame is held for a second."""
    import imageio.v2 as imageio

    path = Path(path)
    arrays = [np.asarray(f.convert("RGB")) for f in frames]
    arrays += [arrays[-1]] * fps
    if path.suffix.lower() == ".mp4":
        even = [a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2] for a in arrays]
        imageio.mimsave(path, even, fps=fps, macro_block_size=1)
    else:
        imageio.mimsave(path, arrays, duration=1000 / fps, loop=0)
    return path


def save_sample_grid(G, z: torch.Tensor, path: Path, *, grid: int, truncation_psi: float = 1.0) -> Path:
    """A grid x grid PNG of G's images for the latents `z` (noise 'const')."""
    from draggan.latents import synthesize, ws_from_z

    imgs = synthesize(G, ws_from_z(G, z, truncation_psi), batch=16)
    imgs = (imgs * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu()
    n, c, h, w = imgs.shape
    tiles = imgs[: grid * grid].reshape(grid, grid, c, h, w).permute(0, 3, 1, 4, 2).reshape(grid * h, grid * w, c)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tiles.numpy()).save(path)
    return path
