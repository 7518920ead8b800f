"""Reconstruction metrics as pure functions of two images in [-1, 1] ([1, 3, H, W] or [3, H, W])."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, on images clamped to [-1, 1] (peak = the range, 2).

    Args: a, b: images of the same shape in [-1, 1].
    Returns: PSNR in dB (inf for identical images).
    """
    return psnr_from_mse(((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).double().square().mean().item())


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error measured on images in [0, 1] (peak 1); inf for 0."""
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004) with a Gaussian window, averaged over channels and pixels.

    Args: a, b: images of the same shape in [-1, 1] (rescaled to [0, 1]).
    Returns: the mean SSIM, 1 for identical images.
    """
    x = ((a.clamp(-1, 1) + 1) / 2).double().reshape(-1, 1, *a.shape[-2:])
    y = ((b.clamp(-1, 1) + 1) / 2).double().reshape(-1, 1, *b.shape[-2:])
    window = min(window, x.shape[-1], x.shape[-2])
    t = torch.arange(window, dtype=torch.float64) - (window - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = (g / g.sum())
    k = (g[:, None] * g[None, :])[None, None]

    def blur(v):
        return F.conv2d(v, k)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())
