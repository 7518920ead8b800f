"""Inversion quality on the embedded toy-faces model (renders serve as photos the generator never saw)."""

from __future__ import annotations

import pytest
import torch

from draggan.apps.toyfaces.detector import load_detector
from draggan.apps.toyfaces.renderer import LANDMARKS, render_seeds
from draggan.latents import latents_from_seeds, synthesize
from draggan.loading import load_generator
from draggan.session import DragSession
from inversion import apply_noise, pivotal_tune, project
from inversion.metrics import psnr


@pytest.fixture(scope="module")
def G():
    return load_generator("toy-faces-64", device="cpu")


def test_wplus_mse_projection_of_generated_images_reaches_30db(G):
    target = synthesize(G, latents_from_seeds(G, [77], 0.7))
    res = project(G, target, space="w+", loss="mse", num_steps=300, w_avg_samples=2000, optimize_noise=False,
                  progress=False)
    assert psnr(res.image, target) >= 30.0


@pytest.fixture(scope="module")
def inverted_render(G):
    target, _, truth = render_seeds([3_000_001], 64)
    proj = project(G, target, space="w+", loss="mse", num_steps=300, w_avg_samples=2000, optimize_noise=False,
                   progress=False)
    tuned = pivotal_tune(apply_noise(G, proj.noise), target, proj.ws, num_steps=200, lr=3e-3, lpips_weight=0.0,
                         progress=False)
    return target, truth, proj, tuned


def test_projection_and_tuning_of_held_out_renders_reach_28db(inverted_render):
    target, _, proj, tuned = inverted_render
    assert psnr(tuned.image, target) >= 28.0
    assert psnr(tuned.image, target) > psnr(proj.image, target)


def test_drag_on_an_inverted_render_reaches_its_target(inverted_render):
    target, truth, proj, tuned = inverted_render
    nose = truth[0, LANDMARKS.index("nose_tip")].tolist()
    goal = [nose[0] + 3.0, nose[1]]
    from tests.eval.test_landmarks import toy_drag_config

    session = DragSession(tuned.G, proj.ws, [nose], [goal], config=toy_drag_config())
    result = session.run(max_steps=150)
    assert torch.tensor(result.handles[0]).sub(torch.tensor(goal)).norm() <= 2.0
    # The re-detected nose follows, though less far than the tracked handle (2.3 px short when measured).
    found = load_detector()(result.image.clamp(-1, 1)).landmarks[0, LANDMARKS.index("nose_tip")]
    assert (found - torch.tensor(goal)).norm() < 3.0 - 0.3
