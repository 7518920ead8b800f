"""Pivotal tuning (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", ACM TOG 2022).

With the projected latent fixed as a pivot, the synthesis network's weights are fine-tuned so that
the pivot reproduces the image exactly: LPIPS (AlexNet, as in the paper) plus L2 between the
generated and target images. The optional locality regularisation keeps the generator's images
unchanged at latents interpolated from the pivot towards random ones (the paper's alpha = 30).
The mapping network is never changed; the caller's generator is not modified.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from draggan.networks import Generator
from inversion.projector import downsample_256


@dataclass
class TuningResult:
    G: Generator  # the tuned copy
    image: torch.Tensor  # [1, 3, H, W] the tuned generator's image of the pivot, in [-1, 1]
    losses: list[float] = field(default_factory=list)


def pivotal_tune(G: Generator, target: torch.Tensor, ws_pivot: torch.Tensor, *,
                 num_steps: int = 350,  # optimisation steps
                 lr: float = 3e-4,  # Adam learning rate
                 lpips_weight: float = 1.0,  # weight of LPIPS between the pivot's image and the target
                 l2_weight: float = 1.0,  # weight of the mean squared error
                 locality_regularization: bool = False,  # keep the images of nearby latents unchanged
                 locality_weight: float = 0.1,  # weight of the locality terms (L2 and LPIPS each)
                 locality_alpha: float = 30.0,  # distance from the pivot of the regularisation latents
                 lpips_model: torch.nn.Module | None = None,  # LPIPS (AlexNet); required when lpips_weight > 0
                 seed: int = 0,
                 progress: bool = True,  # a tqdm bar on stderr
                 callback: Callable[[int, int], None] | None = None) -> TuningResult:  # (step done, num_steps)
    """Fine-tune a copy of `G`'s synthesis network so that `ws_pivot` [1, num_ws, w_dim] renders `target`."""
    device = next(G.parameters()).device
    if tuple(ws_pivot.shape) != (1, G.num_ws, G.w_dim):
        raise ValueError(f"ws_pivot must be [1, {G.num_ws}, {G.w_dim}] for this generator, got {list(ws_pivot.shape)}")
    if target.ndim != 4 or tuple(target.shape[1:]) != (G.img_channels, G.img_height, G.img_width):
        raise ValueError(f"target must be [1, {G.img_channels}, {G.img_height}, {G.img_width}], got {list(target.shape)}")
    if lpips_weight > 0 and lpips_model is None:
        raise ValueError("lpips_weight > 0 needs an LPIPS model (see inversion.load_lpips)")
    G_orig = copy.deepcopy(G).eval().requires_grad_(False)
    tuned = copy.deepcopy(G).eval().requires_grad_(False)
    tuned.synthesis.requires_grad_(True)
    pivot = ws_pivot.detach().to(device, torch.float32)
    target = target.to(device, torch.float32)
    opt = torch.optim.Adam(tuned.synthesis.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def distance(a: torch.Tensor, b: torch.Tensor, w_l2: float, w_lpips: float) -> torch.Tensor:
        d = w_l2 * (a - b).square().mean()
        if w_lpips > 0:
            d = d + w_lpips * lpips_model(downsample_256(a), downsample_256(b)).mean()
        return d

    losses = []
    for step in tqdm(range(num_steps), desc="pivotal tuning", disable=not progress, dynamic_ncols=True):
        image = tuned.synthesis(pivot, noise_mode="const")
        loss = distance(image, target, l2_weight, lpips_weight)
        if locality_regularization:
            z = torch.randn([1, G.z_dim], generator=gen).to(device)
            with torch.no_grad():
                w_z = G_orig.mapping(z, None)
                direction = w_z - pivot
                w_r = pivot + locality_alpha * direction / direction.norm()
                ref = G_orig.synthesis(w_r, noise_mode="const")
            loss = loss + distance(tuned.synthesis(w_r, noise_mode="const"), ref, locality_weight,
                                   locality_weight if lpips_model is not None else 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step + 1, num_steps)
    tuned.requires_grad_(False)
    with torch.no_grad():
        image = tuned.synthesis(pivot, noise_mode="const")
    return TuningResult(G=tuned, image=image, losses=losses)
