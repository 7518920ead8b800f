"""The StyleGAN2 trainer: discriminator, losses, the loop, resuming, the script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from draggan.checkpoint import load_generator_file
from draggan.apps.training.discriminator import Discriminator
from draggan.apps.training.loop import STATE_FILE, TrainConfig, train
from draggan.apps.training.loss import discriminator_loss, generator_loss, r1_penalty

ROOT = Path(__file__).resolve().parents[2]


def tiny_config(**kw) -> TrainConfig:
    base = dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8, batch=4,
                kimg=0.016, snapshot_kimg=0.008, log_every=1, grid_size=2, r1_interval=2)
    return TrainConfig(**{**base, **kw})


def test_discriminator_shapes_and_input_check():
    D = Discriminator(32, channel_base=128, channel_max=16)
    assert D(torch.randn(5, 3, 32, 32)).shape == (5, 1)  # 5 is not a multiple of the mbstd group
    with pytest.raises(ValueError, match="img"):
        D(torch.randn(2, 3, 16, 16))


def test_losses_match_their_formulas():
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5], [-3.0]])
    sp = torch.nn.functional.softplus
    assert torch.isclose(generator_loss(fake), sp(-fake).mean())
    assert torch.isclose(discriminator_loss(real, fake), sp(fake).mean() + sp(-real).mean())
    # R1 of a linear "discriminator" w.x is |w|^2 for every image.
    w = torch.randn(1, 3, 4, 4)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits = (x * w).sum(dim=[1, 2, 3])
    assert torch.allclose(r1_penalty(logits, x), w.square().sum().expand(2), rtol=1e-5)


def test_training_learns_something_and_writes_snapshots(tmp_path):
    class Recorder:
        def __init__(self):
            self.metrics, self.images = [], []

        def log(self, metrics, step):
            self.metrics.append((step, metrics))

        def log_image(self, name, path, step):
            self.images.append(path)

    rec = Recorder()
    res = train(tiny_config(), tmp_path, logger=rec)
    assert res.kimg == pytest.approx(0.016) and res.iterations == 4
    names = sorted(p.name for p in tmp_path.iterdir())
    assert STATE_FILE in names and "network-final.safetensors" in names
    assert sum(n.startswith("samples-") for n in names) >= 2 and rec.images
    assert {"loss_G", "loss_D", "r1", "img_per_sec"} <= set(rec.metrics[-1][1])
    G = load_generator_file(res.generator_path)
    assert G.img_resolution == 16
    fresh = tiny_config()
    from draggan.networks import Generator

    torch.manual_seed(fresh.seed)
    G0 = Generator(**fresh.generator_kwargs())
    changed = [k for k, v in G.state_dict().items() if not torch.equal(v, G0.state_dict()[k])]
    assert any(".weight" in k for k in changed)  # the EMA moved with the training


def test_resume_continues_exactly(tmp_path):
    straight = train(tiny_config(kimg=0.032), tmp_path / "a")
    train(tiny_config(kimg=0.016), tmp_path / "b")
    resumed = train(tiny_config(kimg=0.032), tmp_path / "b")
    assert resumed.iterations == straight.iterations == 8
    A = load_generator_file(straight.generator_path).state_dict()
    B = load_generator_file(resumed.generator_path).state_dict()
    for k in A:
        assert torch.allclose(A[k], B[k], atol=1e-6), k


def test_resume_refuses_a_different_model(tmp_path):
    train(tiny_config(), tmp_path)
    with pytest.raises(ValueError, match="different configuration"):
        train(tiny_config(channel_max=16), tmp_path)


def test_max_minutes_stops_and_saves(tmp_path):
    res = train(tiny_config(kimg=10, max_minutes=0.0), tmp_path)
    assert res.iterations == 0 and (tmp_path / "network-final.safetensors").exists()


def test_train_script_with_wandb_offline(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "scripts/train.py"), "train.resolution=16", "train.z_dim=8", "train.w_dim=8",
           "train.channel_base=64", "train.channel_max=8", "train.batch=4", "train.kimg=0.008", "train.grid_size=2",
           "train.snapshot_kimg=0.004", f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    env = {"WANDB_MODE": "offline", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}  # this checkout
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "network-final.safetensors").exists()
    assert list((out / "wandb").glob("offline-run-*")), "no offline W&B run was written"
    r = subprocess.run([a.replace("train.batch=4", "train.batch=8") for a in cmd], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=300)
    assert r.returncode != 0 and "different configuration" in r.stderr


def test_init_from_the_shipped_model_with_a_discriminator_warm_up(tmp_path):
    # Continuing from released weights: G starts as toy-faces-64 and stays untouched while D warms up.
    cfg = TrainConfig(batch=4, kimg=0.012, snapshot_kimg=0, init_from="toy-faces-64", d_warmup_kimg=0.008, seed=1)
    shipped = load_generator_file(Path("draggan/models/toy-faces-64.safetensors"))
    result = train(cfg, tmp_path / "warm", logger=None)
    state = torch.load(tmp_path / "warm" / STATE_FILE, weights_only=True)
    G_state = state["G"]
    changed = [k for k, v in shipped.named_parameters() if not torch.equal(v, G_state[k])]
    assert result.iterations == 3
    assert changed, "the one generator step after the warm-up should have changed G"
    # With the warm-up covering the whole run, G is exactly the shipped model.
    cfg_all = TrainConfig(batch=4, kimg=0.008, snapshot_kimg=0, init_from="toy-faces-64", d_warmup_kimg=1, seed=1)
    train(cfg_all, tmp_path / "all", logger=None)
    G_state = torch.load(tmp_path / "all" / STATE_FILE, weights_only=True)["G"]
    assert all(torch.equal(v, G_state[k]) for k, v in shipped.named_parameters())  # (w_avg, a buffer, moves)


def test_init_from_refuses_a_different_architecture(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        train(TrainConfig(batch=4, kimg=0.004, channel_max=32, init_from="toy-faces-64"), tmp_path, logger=None)


def test_compact_state_is_small_files_and_resumes_close_to_an_uninterrupted_run(tmp_path):
    from draggan.apps.training import state as compact_state

    straight = train(tiny_config(kimg=0.032), tmp_path / "a")
    train(tiny_config(kimg=0.016, state_format="compact"), tmp_path / "b")
    folder = tmp_path / "b" / compact_state.STATE_DIR
    assert sorted(p.name for p in folder.iterdir()) == [f"{f}.safetensors" for f in sorted(compact_state.FILES)]
    assert not (tmp_path / "b" / STATE_FILE).exists()
    resumed = train(tiny_config(kimg=0.032, state_format="compact"), tmp_path / "b")
    assert resumed.iterations == straight.iterations == 8
    A = load_generator_file(straight.generator_path).state_dict()
    B = load_generator_file(resumed.generator_path).state_dict()
    # Weights and random streams resume exactly; only Adam's moments were rounded to bfloat16.
    worst = max(float((A[k] - B[k]).abs().max()) for k in A)
    assert 0 < worst < 1e-3


def test_the_resume_check_measures_both_states_and_says_which_training_runs(tmp_path, capsys):
    """scripts/bench_resume.py trains five times (minutes at its defaults): stderr names each run as it starts."""
    from draggan.apps.training.resume_check import measure_resume

    result = measure_resume(tiny_config(kimg=0.032, snapshot_kimg=0), tmp_path, split_kimg=0.016, progress=True)
    assert result["iterations"] == 8 and result["split_iteration"] == 4
    assert result["full_vs_straight"] < 1e-6 and 0 < result["compact_vs_straight"] < 1e-3
    assert result["straight_change_after_split"] > 1e-3  # the training's own progress after the split
    started = [line for line in capsys.readouterr().err.splitlines() if line.endswith(" ...")]
    assert started == ["resume check: straight through (0.032 kimg) ...",
                       "resume check: full state, to the split (0.016 kimg) ...",
                       "resume check: full state, resumed to 0.032 kimg ...",
                       "resume check: compact state, to the split (0.016 kimg) ...",
                       "resume check: compact state, resumed to 0.032 kimg ..."]


def test_compact_state_refuses_a_mixed_folder_and_a_too_large_file(tmp_path):
    from safetensors.torch import load_file, save_file

    train(tiny_config(kimg=0.008, state_format="compact"), tmp_path)
    g = tmp_path / "training-state" / "G.safetensors"
    save_file(load_file(str(g)), str(g), metadata={"iteration": "999"})
    with pytest.raises(ValueError, match="different iterations"):
        train(tiny_config(kimg=0.016, state_format="compact"), tmp_path)
    with pytest.raises(ValueError, match="over the state's limit"):
        train(tiny_config(kimg=0.008, state_format="compact", state_file_mb=0.001), tmp_path / "small")


def test_a_full_state_continues_as_a_compact_one(tmp_path):
    train(tiny_config(kimg=0.016), tmp_path)
    res = train(tiny_config(kimg=0.032, state_format="compact"), tmp_path)
    assert res.iterations == 8 and (tmp_path / "training-state" / "state.safetensors").is_file()


def test_the_256px_preset_composes_and_its_state_files_fit_16_mb():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from draggan.networks import Generator
    from eval.configs import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=["+train=toyfaces256", "train.batch=32"])
    tc = TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))
    assert (tc.resolution, tc.state_format, tc.batch, tc.mixed_precision) == (256, "compact", 32, "bf16")
    # A G file holds the float32 weights and two bfloat16 moments: 8 bytes a parameter (D likewise).
    for net in (Generator(**tc.generator_kwargs()), Discriminator(256, channel_base=tc.channel_base,
                                                                 channel_max=tc.channel_max)):
        assert sum(p.numel() for p in net.parameters()) * 8 < tc.state_file_mb * 2 ** 20
