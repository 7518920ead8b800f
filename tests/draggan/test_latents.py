"""`draggan.latents`: the one place where a seed becomes a latent (the drag command, the editor, the protocols,
the gates and the projector's statistics all draw through it)."""

from __future__ import annotations

import numpy as np
import torch

from draggan.latents import initial_latent, latents_from_seeds, synthesize, ws_from_z, z_from_seeds
from tests.conftest import tiny_generator


def test_a_seed_draws_the_official_z():
    G = tiny_generator(32)
    z = z_from_seeds(G, [3, 7])
    assert z.dtype == torch.float32 and z.shape == (2, G.z_dim)
    assert torch.equal(z[1], torch.from_numpy(np.random.RandomState(7).randn(G.z_dim)).float())


def test_one_seed_or_many_give_the_same_latent():
    G = tiny_generator(32)
    many = latents_from_seeds(G, [5, 6], truncation_psi=0.7)
    assert many.shape == (2, G.num_ws, G.w_dim) and not many.requires_grad
    assert torch.allclose(initial_latent(G, 6, 0.7), many[1:], atol=1e-6)


def test_conditional_generators_get_the_zero_label():
    """The landmark protocol passed c=None, which fails on a conditional generator; the shared draw does not."""
    G = tiny_generator(32, c_dim=4)
    ws = latents_from_seeds(G, [0, 1], truncation_psi=1.0)
    with torch.no_grad():
        expected = G.mapping(z_from_seeds(G, [0, 1]), torch.zeros([2, 4]))
    assert torch.equal(ws, expected) and torch.equal(ws_from_z(G, z_from_seeds(G, [0, 1])), expected)
    images = synthesize(G, ws, batch=1)
    assert images.shape == (2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(images, G.synthesis(ws), atol=1e-5)
