"""draggan/threads.py: the `threads=auto` rule (cores this process may use; one thread for small work) and the
OpenMP wait policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from draggan.loading import load_generator, random_generator
from draggan.networks import Generator
from draggan.threads import (SHARE_MIN_MACS, available_cores, quiet_openmp, synthesis_macs, thread_count,
                             threads_for, use_threads)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_chosen_count(monkeypatch):
    """Each test starts as a fresh process does: no count chosen by a command yet."""
    monkeypatch.setattr("draggan.threads._chosen", None)


def test_auto_is_the_cores_this_process_may_use_shared_among_torchruns_processes():
    cores = len(os.sched_getaffinity(0))
    assert available_cores({}) == cores
    assert available_cores({"LOCAL_WORLD_SIZE": str(2 * cores)}) == 1  # never zero
    assert thread_count("auto", environ={}) == cores  # no size given: large work
    assert thread_count("auto", environ={"OMP_NUM_THREADS": "1"}) == 1  # the user's cap
    assert thread_count("AUTO", work_macs=10 * SHARE_MIN_MACS, environ={}) == cores


def test_auto_gives_small_work_one_thread_and_the_rule_sees_the_generators_size():
    toy = load_generator("toy-faces-64", device="cpu")
    assert 0.15e9 < synthesis_macs(toy) < 0.3e9  # measured: 0.21 G multiply-adds per synthesis pass
    assert synthesis_macs(toy, batch=32) == 32 * synthesis_macs(toy)
    assert thread_count("auto", work_macs=synthesis_macs(toy)) == 1  # a drag on the embedded model: one thread
    assert thread_count("auto", work_macs=synthesis_macs(toy, batch=32), environ={}) == available_cores({})
    official = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=64, mapping_kwargs=dict(num_layers=1),
                         synthesis_kwargs=dict(channel_base=16384, channel_max=512))
    assert synthesis_macs(official) > SHARE_MIN_MACS  # an official-width generator shares its steps
    assert synthesis_macs(random_generator("random:128")) < synthesis_macs(random_generator("random:256"))


def test_a_number_is_taken_as_it_is_and_none_leaves_torch_alone():
    assert thread_count(3) == 3 and thread_count("2") == 2 and thread_count(None) is None
    for bad in (0, -1, "two", 1.5, "1.5", ""):
        with pytest.raises(ValueError, match="threads must be auto"):
            thread_count(bad)


def test_a_count_the_user_chose_holds_for_the_library_calls_after_it():
    before = torch.get_num_threads()
    try:
        use_threads(1)  # a command's threads=1
        with threads_for("auto", work_macs=10 * SHARE_MIN_MACS) as inside:  # DragSession.run's default
            assert inside == 1
        use_threads("auto")  # auto is no choice: it does not replace the remembered number
        assert thread_count("auto") == 1
    finally:
        torch.set_num_threads(before)


def test_threads_for_sets_the_count_inside_and_restores_it_after():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with threads_for(other) as inside:
        assert inside == other == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), threads_for(other):
        raise RuntimeError("fails inside")
    assert torch.get_num_threads() == before
    assert use_threads(None) == before  # None: torch's own choice, untouched


def test_quiet_openmp_keeps_a_users_wait_policy():
    env = {}
    quiet_openmp(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    quiet_openmp(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert quiet_openmp({}) is False  # torch is loaded in this process: too late for OpenMP to read it


def test_quiet_openmp_before_torch_reaches_openmp():
    """In a fresh process, called before torch is loaded, OpenMP reads PASSIVE (it prints what it read with
    OMP_DISPLAY_ENV). Loaded from its file: importing the package would load torch first (draggan/__init__.py
    calls it before anything else for that reason)."""
    code = ("import importlib.util as u; s = u.spec_from_file_location('t', 'draggan/threads.py'); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); assert m.quiet_openmp(); import torch; torch.ones(2)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(env, OMP_DISPLAY_ENV="TRUE"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OMP_WAIT_POLICY = 'PASSIVE'" in out.stderr + out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("config,value", [("gates", "auto"), ("train", "2"), ("drag_checks", "null"),
                                          ("invert", "1"), ("train_detector", "auto"), ("bench_drag", "auto")])
def test_the_scripts_take_threads(config, value):
    from hydra import compose, initialize_config_dir

    from eval.configs import register_configs

    register_configs()
    key = "train.threads" if config == "train" else "threads"
    extra = ["image=x.png"] if config == "invert" else []
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config, overrides=[f"{key}={value}", *extra])
    got = cfg.train.threads if config == "train" else cfg.threads
    assert thread_count(got) == thread_count({"null": None, "2": 2, "1": 1}.get(value, value))


def test_the_library_entry_points_use_one_thread_for_a_small_generator_and_restore_torchs_count(monkeypatch):
    """DragSession.run and inversion's invert_image: auto gives the toy-sized work one thread while they run."""
    from draggan.latents import initial_latent
    from draggan.session import DragSession
    from draggan.settings import DragConfig
    from inversion.configs import InversionSettings, PTISettings
    from inversion.run import invert_image
    from tests.conftest import tiny_generator

    monkeypatch.setattr("draggan.threads._chosen", None)
    G = tiny_generator(32)
    assert synthesis_macs(G) < SHARE_MIN_MACS
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []
        settings = InversionSettings(loss="mse", num_steps=2, w_avg_samples=100, pti=PTISettings(num_steps=1, lpips_weight=0))
        invert_image(G, torch.zeros(1, 3, 32, 32), settings, progress=False,
                     callback=lambda *_: seen.append(torch.get_num_threads()))
        session = DragSession(G, initial_latent(G, 0, 0.7), [(10, 10)], [(12, 12)], config=DragConfig(feature_block=2))
        session.run(max_steps=2, callback=lambda *_: seen.append(torch.get_num_threads()))
        assert seen == [1] * len(seen) and len(seen) == 5 and torch.get_num_threads() == 2
        invert_image(G, torch.zeros(1, 3, 32, 32), settings, progress=False, threads=None,
                     callback=lambda *_: seen.append(torch.get_num_threads()))
        assert seen[5:] == [2, 2, 2]  # None: torch's setting as it was
    finally:
        torch.set_num_threads(before)
