"""Latents from seeds, and images from latents: the one place where a seed becomes a W+ latent.

A seed's z is drawn by numpy's `RandomState(seed).randn(z_dim)`, as the official StyleGAN2 tools draw it, so
that seed N here is seed N there. Conditional generators get the zero label (`c_dim` zeros), as the official
tools give them when no class is chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from draggan.networks import Generator


def _device(G: Generator) -> torch.device:
    return next(G.parameters()).device


def _normal(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal values of numpy's `RandomState(seed)`: the one place where a seed becomes z."""
    return np.random.RandomState(seed).randn(*shape)


def z_from_seeds(G: Generator, seeds: Sequence[int]) -> torch.Tensor:
    """z [N, z_dim] of `seeds` on G's device, one RandomState per seed."""
    z = np.stack([_normal(s, (G.z_dim,)) for s in seeds])
    return torch.from_numpy(z).to(_device(G), torch.float32)


def z_samples(G: Generator, num: int, seed: int) -> torch.Tensor:
    """z [num, z_dim] drawn at once from one RandomState(seed), on G's device (how the official projector draws the
    samples of its w statistics)."""
    return torch.from_numpy(_normal(seed, (num, G.z_dim))).to(_device(G), torch.float32)


def ws_from_z(G: Generator, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
    """W+ latents [N, num_ws, w_dim] of `z` (without gradients), with the zero label of a conditional `G`."""
    c = torch.zeros([len(z), G.c_dim], device=z.device) if G.c_dim else None
    with torch.no_grad():
        return G.mapping(z, c, truncation_psi=truncation_psi)


def latents_from_seeds(G: Generator, seeds: Sequence[int], truncation_psi: float) -> torch.Tensor:
    """W+ latents [N, num_ws, w_dim] of `seeds`."""
    return ws_from_z(G, z_from_seeds(G, seeds), truncation_psi)


def initial_latent(G: Generator, seed: int, truncation_psi: float) -> torch.Tensor:
    """W+ latent [1, num_ws, w_dim] of `seed`: the image a drag starts from."""
    return latents_from_seeds(G, [seed], truncation_psi)


def synthesize(G: Generator, ws: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """Images [N, 3, H, W] in [-1, 1] of latents `ws`, `batch` at a time, without gradients."""
    with torch.no_grad():
        return torch.cat([G.synthesis(ws[i:i + batch]) for i in range(0, len(ws), batch)])
