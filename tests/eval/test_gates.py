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


def test_the_gates_say_what_they_do_while_they_run(capfd):
    """model_gates.py spent minutes in silence (issue 27): each phase is announced on stderr as it starts, with a
    line every few seconds while it lasts, before the gates are printed."""
    import tempfile
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from eval.configs import register_configs
    from eval.gates import run_gates

    register_configs()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[2] / "conf"), version_base=None):
        cfg = compose("gates", overrides=["num_samples=2", "num_pairs=1", "num_renders=2", "drag.max_steps=2"])
    with tempfile.TemporaryDirectory() as tmp:
        gates = run_gates(cfg, tmp)
    err = capfd.readouterr().err
    phases = ["gates: renderer speed ...", "gates: detector error on 2 held-out renders ...",
              "gates: detection rate on 2 samples ...", "landmarks: choosing 1 pairs of faces ..."]
    positions = [err.find(p) for p in phases]
    assert -1 not in positions and positions == sorted(positions), err
    assert "gates: detector error on 2 held-out renders: done in" in err
    assert set(gates["values"]) == set(THRESHOLDS)
