"""A drag whose latent runs away stops at the last good state and says why (issue 15's numerical faults)."""

from __future__ import annotations

import torch

from draggan.session import DragSession
from draggan.settings import DragConfig
from tests.conftest import tiny_generator


def _session(**config) -> DragSession:
    G = tiny_generator(64, seed=3)
    ws = G.mapping(torch.randn(1, 16, generator=torch.Generator().manual_seed(0)), None)
    return DragSession(G, ws, [(30.0, 30.0)], [(40.0, 30.0)], config=DragConfig(feature_block=3, **config))


def test_a_runaway_latent_stops_with_the_state_before_the_update_that_did_it():
    s = _session(lr=1.0, divergence_ratio=1.05)  # a huge step; 5 % more feature energy counts as diverged
    result = s.run(max_steps=30)
    last = result.history[-1]
    assert result.done and last.error is not None and "diverged" in last.error and "lr" in last.error
    k = len(result.history) - 1  # the failed update was that of step k; the state after step k - 1 is kept
    torch.testing.assert_close(result.ws, s.ws_at(k - 1), rtol=0, atol=0)
    features = s.features(result.ws.detach())
    scale = float(features.square().mean().sqrt())
    assert scale <= 1.05 * s.feature_scale0  # what was kept is within the limit


def test_a_sane_drag_is_not_called_diverged():
    result = _session(lr=0.02).run(max_steps=20)
    assert all(st.error is None for st in result.history)
