"""Projection of an image into a StyleGAN2 latent space (W or W+).

Follows the projector of Karras et al., "Analyzing and Improving the Image Quality of StyleGAN"
(CVPR 2020) and its StyleGAN2-ADA release: start from the mean w estimated from `w_avg_samples`
samples, optimise with Adam under a learning-rate ramp-up and cosine ramp-down, perturb w with a
decaying Gaussian, regularise the per-layer noise maps (their auto-correlation at every scale)
and renormalise them after each step. The image distance is LPIPS on images area-downsampled to at
most 256 px, MSE, or a weighted sum of both.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from draggan.latents import ws_from_z, z_samples
from draggan.networks import Generator

LOSSES = ("lpips", "mse")


@dataclass
class ProjectionResult:
    ws: torch.Tensor  # [1, num_ws, w_dim] the projected latent (W+ shaped; equal rows for space='w')
    noise: dict[str, torch.Tensor]  # name of each `noise_const` buffer -> the optimised noise map
    image: torch.Tensor  # [1, 3, H, W] the reconstruction, in [-1, 1]
    losses: list[float] = field(default_factory=list)  # total loss at each step
    distances: list[float] = field(default_factory=list)  # image distance at each step


def parse_loss(loss: str | Mapping[str, float]) -> dict[str, float]:
    """'lpips', 'mse', 'lpips+mse' or {'lpips': 1.0, 'mse': 0.1} -> weights by name."""
    if isinstance(loss, str):
        weights = {name.strip(): 1.0 for name in loss.split("+")}
    else:
        weights = {str(k): float(v) for k, v in dict(loss).items()}
    unknown = set(weights) - set(LOSSES)
    if unknown or not weights:
        raise ValueError(f"loss must name some of {LOSSES} (e.g. 'lpips', 'mse', 'lpips+mse' or a dict of weights), "
                         f"got {loss!r}")
    return weights


def downsample_256(img: torch.Tensor) -> torch.Tensor:
    """Area-downsample images larger than 256 px (the projector's LPIPS resolution)."""
    if img.shape[2] > 256:
        img = F.interpolate(img, size=(256, 256 * img.shape[3] // img.shape[2]), mode="area")
    return img


def image_distance(a: torch.Tensor, b: torch.Tensor, weights: Mapping[str, float],
                   lpips_model: torch.nn.Module | None) -> torch.Tensor:
    """Weighted sum of LPIPS (on <= 256 px copies) and MSE between images in [-1, 1]; a scalar."""
    total = a.new_zeros([])
    if weights.get("mse"):
        total = total + weights["mse"] * (a - b).square().mean()
    if weights.get("lpips"):
        if lpips_model is None:
            raise ValueError("the loss uses LPIPS but no LPIPS model was given (see inversion.load_lpips)")
        total = total + weights["lpips"] * lpips_model(downsample_256(a), downsample_256(b)).sum()
    return total


def noise_buffers(G: Generator) -> dict[str, torch.Tensor]:
    return {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor:
    """Squared auto-correlation of each noise map at shifts of one pixel, at every scale down to 8x8."""
    reg = noise[0].new_zeros([])
    for v in noise:
        v = v[None, None]
        while True:
            reg = reg + (v * torch.roll(v, 1, dims=3)).mean() ** 2 + (v * torch.roll(v, 1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


def w_statistics(G: Generator, num_samples: int = 10_000, seed: int = 123) -> tuple[torch.Tensor, float]:
    """Mean w [1, 1, w_dim] and the root mean squared distance to it, from `num_samples` mapped z."""
    w = ws_from_z(G, z_samples(G, num_samples, seed))[:, :1, :]
    w_avg = w.mean(dim=0, keepdim=True)
    return w_avg, float(((w - w_avg).square().sum() / num_samples).sqrt())


def project(G: Generator, target: torch.Tensor, *,
            space: str = "w",  # 'w' (one row shared by every layer) or 'w+' (a row per layer)
            num_steps: int = 1000,  # optimisation steps
            lr: float = 0.1,  # peak Adam learning rate
            loss: str | Mapping[str, float] = "lpips",  # 'lpips', 'mse', 'lpips+mse' or weights by name
            noise_regularize: float = 1e5,  # weight of the noise auto-correlation penalty
            initial_noise_factor: float = 0.05,  # start of the w perturbation, in units of the w spread
            noise_ramp_length: float = 0.75,  # fraction of the steps over which the perturbation decays
            lr_rampup: float = 0.05,  # fraction of the steps of linear warm-up
            lr_rampdown: float = 0.25,  # fraction of the steps of cosine decay at the end
            w_avg_samples: int = 10_000,  # z samples for the mean w
            optimize_noise: bool = True,  # optimise the noise maps too (as the StyleGAN2 projector)
            lpips_model: torch.nn.Module | None = None,  # required when the loss uses LPIPS
            seed: int = 0,  # seeds the noise maps' initial values
            progress: bool = True,  # a tqdm bar on stderr
            callback: Callable[[int, int], None] | None = None) -> ProjectionResult:  # (step done, num_steps)
    """Find the latent (and noise maps) whose image is closest to `target` [1, 3, H, W] in [-1, 1]."""
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', got {space!r}")
    weights = parse_loss(loss)
    device = next(G.parameters()).device
    if target.ndim != 4 or target.shape[0] != 1 or tuple(target.shape[1:]) != (G.img_channels, G.img_height, G.img_width):
        raise ValueError(f"target must be [1, {G.img_channels}, {G.img_height}, {G.img_width}] for this generator, "
                         f"got {list(target.shape)}")
    G = copy.deepcopy(G).eval().requires_grad_(False).to(device)  # the caller's noise buffers stay as they are
    target = target.to(device, torch.float32)
    w_avg, w_std = w_statistics(G, w_avg_samples)
    w_opt = (w_avg.repeat(1, G.num_ws, 1) if space == "w+" else w_avg).clone().requires_grad_(True)
    bufs = noise_buffers(G)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for buf in bufs.values():
        buf.copy_(torch.randn(buf.shape, generator=gen))
        buf.requires_grad_(optimize_noise)
    params = [w_opt] + (list(bufs.values()) if optimize_noise else [])
    opt = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
    losses, distances = [], []
    bar = tqdm(range(num_steps), desc=f"project ({space})", disable=not progress, dynamic_ncols=True)
    for step in bar:
        t = step / num_steps
        w_noise_scale = w_std * initial_noise_factor * max(0.0, 1.0 - t / noise_ramp_length) ** 2
        ramp = min(1.0, (1.0 - t) / lr_rampdown)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / lr_rampup)
        for group in opt.param_groups:
            group["lr"] = lr * ramp
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        ws = w_opt + w_noise
        ws = ws.repeat(1, G.num_ws, 1) if space == "w" else ws
        image = G.synthesis(ws, noise_mode="const")
        dist = image_distance(image, target, weights, lpips_model)
        reg = noise_regularization(list(bufs.values())) if optimize_noise else dist.new_zeros([])
        total = dist + noise_regularize * reg
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            for buf in bufs.values():
                buf.sub_(buf.mean()).mul_(buf.square().mean().rsqrt())
        losses.append(float(total.detach()))
        distances.append(float(dist.detach()))
        if step % 10 == 0:
            bar.set_postfix(dist=f"{distances[-1]:.4f}")
        if callback is not None:
            callback(step + 1, num_steps)
    with torch.no_grad():
        ws = w_opt.detach().repeat(1, G.num_ws, 1) if space == "w" else w_opt.detach().clone()
        image = G.synthesis(ws, noise_mode="const")
    return ProjectionResult(ws=ws, noise={k: v.detach().clone() for k, v in bufs.items()}, image=image,
                            losses=losses, distances=distances)


def apply_noise(G: Generator, noise: Mapping[str, torch.Tensor]) -> Generator:
    """A copy of `G` whose constant noise maps are `noise` (from a `ProjectionResult`)."""
    G = copy.deepcopy(G)
    bufs = noise_buffers(G)
    if set(noise) != set(bufs):
        raise ValueError("the noise maps do not belong to this generator")
    with torch.no_grad():
        for k, v in noise.items():
            bufs[k].copy_(v)
    return G
