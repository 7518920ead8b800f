"""The mask term of a drag: features outside the region allowed to move are held at their first values.

Pan et al. 2023, Eq. 3: lambda * || (F - F0) * (1 - M) ||_1, with F the feature map resized to the image and M the
movable region. `mask_loss='l2'` (the library's recommendation) squares the difference, relative to the first
features' RMS, whose gradient vanishes with the change instead of staying constant; `mask_margin` leaves the
features within that many feature cells of the movable region free (they depend on what moves). Every method adds
this term (`DragSession.mask_loss`).
"""

from __future__ import annotations

import math

import torch

from draggan.features import feature_rms


def fixed_region(mask: torch.Tensor, size: tuple[int, int], feature_width: int, margin: float) -> torch.Tensor:
    """[H, W] float: 1 where the term holds the features (outside the movable `mask`, [H, W] bool, and more than
    `margin` feature cells away from it), 0 elsewhere."""
    free = mask
    px = margin * size[1] / feature_width  # the margin in image pixels
    if px > 0:
        k = int(math.ceil(px))
        off = torch.arange(-k, k + 1, device=mask.device, dtype=torch.float32)
        disc = ((off[:, None] ** 2 + off[None, :] ** 2) <= px ** 2).to(torch.float32)[None, None]
        free = torch.nn.functional.conv2d(free.to(torch.float32)[None, None], disc, padding=k)[0, 0] > 0
    return (~free).to(torch.float32)


class MaskTerm:
    """The hold term of one drag: `hold(feat)` keeps the first features, `term(feat)` is lambda * hold."""

    def __init__(self, mask: torch.Tensor, size: tuple[int, int], feature_width: int, *, loss: str = "l1",
                 weight: float = 20.0, margin: float = 0.0):
        self.mask = mask  # [H, W] bool on the device, True = may move
        self.size = size  # (H, W) of the image
        self.loss = loss  # 'l1' (paper) or 'l2' (squared, relative to the first features' RMS)
        self.weight = weight  # lambda
        self.fixed = fixed_region(mask, size, feature_width, margin)  # [H, W] float
        self.feat0: torch.Tensor | None = None  # the first image's features
        self.rms: torch.Tensor | None = None  # their RMS (the 'l2' term's unit)

    def hold(self, feat: torch.Tensor | None) -> None:
        """Keep `feat` (detached) as the features to hold; None forgets them (before the first step)."""
        self.feat0 = feat
        self.rms = None if feat is None else feature_rms(feat)

    def term(self, feat: torch.Tensor) -> torch.Tensor:
        """lambda * the hold term of `feat` [1, C, h, w] (a 0-d tensor with gradients)."""
        diff = torch.nn.functional.interpolate(feat - self.feat0, list(self.size), mode="bilinear") * self.fixed
        if self.loss == "l1":
            hold = diff.abs().mean()
        else:
            hold = (diff / self.rms).square().mean() * self.rms
        return self.weight * hold
