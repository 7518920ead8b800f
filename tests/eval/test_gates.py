"""The gates' scaling with the model's size and the renderer-based stand-in for FID."""

from __future__ import annotations

import torch

from draggan.apps.toyfaces.renderer import PARAM_NAMES, images_per_second, sample_params
from eval.gates import THRESHOLDS, param_frechet_distance, thresholds


def test_thresholds_follow_the_size():
    assert thresholds(64) == THRESHOLDS
    big = thresholds(256)
    assert big["renderer_images_per_second"] == 300 and big["detector_error_px"] == 0.5
    assert {k: v for k, v in big.items() if k != "renderer_images_per_second"} == \
        {k: v for k, v in THRESHOLDS.items() if k != "renderer_images_per_second"}


def test_parameter_distance_sees_a_lack_of_variety():
    reference = sample_params(512, 1)
    same_kind = sample_params(512, 2)
    fixed_pose = sample_params(512, 3)
    for name in ("head_x", "head_y", "head_roll", "mouth_open"):  # faces in nearly one place, pose and mouth
        col = fixed_pose[:, PARAM_NAMES.index(name)]
        fixed_pose[:, PARAM_NAMES.index(name)] = col.mean() + 0.1 * (col - col.mean())
    near, far = param_frechet_distance(same_kind, reference), param_frechet_distance(fixed_pose, reference)
    assert near < 0.1 and far > 4 * near, (near, far)  # each squeezed parameter adds (0.29 - 0.03)^2 = 0.07


def test_renderer_speed_is_measured_on_the_given_device(monkeypatch):
    """Images per second = batch x repeats over the timed renders only (not the untimed first one)."""
    import time

    import draggan.apps.toyfaces.renderer as renderer

    clock = iter([100.0, 102.5])  # the two readings around the timed repeats
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    calls = []
    real = renderer.render
    monkeypatch.setattr(renderer, "render", lambda params, res: calls.append(params.device) or real(params, res))
    assert images_per_second(32, batch=8, repeats=5, device=torch.device("cpu")) == 8 * 5 / 2.5
    assert len(calls) == 6 and {d.type for d in calls} == {"cpu"}
