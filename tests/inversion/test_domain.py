"""A photo outside the generator's domain (inversion/domain.py): the measured threshold, the verdict, and the loud
warning of the inversion commands."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from draggan.registry import MODELS
from inversion.domain import check_domain, domain_threshold_from, outside_photos

ROOT = Path(__file__).resolve().parents[2]
MEASURED = ROOT / "docs" / "results" / "domain-toy-faces-64.json"


def test_the_registered_threshold_is_the_one_measured():
    results = json.loads(MEASURED.read_text())
    again = domain_threshold_from(results["rows"])
    assert again["threshold_psnr"] == results["threshold_psnr"] == MODELS["toy-faces-64"].domain_psnr["mse"]
    assert results["settings"]["loss"] == "mse" and results["settings"]["num_steps"] == MODELS["toy-faces-64"].domain_steps
    samples = [r["psnr"] for r in results["rows"] if r["kind"] == "sample"]
    photos = {r["name"]: r["psnr"] for r in results["rows"] if r["kind"] == "outside"}
    assert min(samples) > results["threshold_psnr"] + 10  # the model's own images are far above it
    assert photos["grace_hopper"] < results["threshold_psnr"] and "grace_hopper" in again["flagged"]


def test_the_threshold_rule_on_made_up_figures():
    rows = [dict(kind="sample", name="s", psnr=40.0), dict(kind="inside", name="r", psnr=30.0),
            dict(kind="outside", name="photo", psnr=18.0)]
    assert domain_threshold_from(rows)["threshold_psnr"] == 24.0 and domain_threshold_from(rows)["separates"]
    rows.append(dict(kind="outside", name="flat", psnr=29.0))  # overlaps: the margin below the domain decides
    verdict = domain_threshold_from(rows)
    assert verdict["threshold_psnr"] == 28.0 and not verdict["separates"] and verdict["missed"] == ["flat"]


def test_the_verdict_warns_below_the_threshold_and_says_when_it_cannot_judge():
    out = check_domain("toy-faces-64", "mse", 17.9, num_steps=500)
    assert out["outside"] is True and "OUTSIDE the domain of toy-faces-64" in out["warning"]
    assert "17.9 dB" in out["warning"] and "24.3 dB" in out["warning"]
    assert check_domain("toy-faces-64", "mse", 30.0, num_steps=500) | {} == dict(
        projection_psnr=30.0, threshold_psnr=24.3, loss="mse", outside=False, warning=None, note=None)
    short = check_domain("toy-faces-64", "mse", 17.9, num_steps=20)
    assert short["outside"] is None and "20 steps" in short["note"] and short["warning"] is None
    unmeasured = check_domain("toy-faces-64", "lpips", 17.9, num_steps=1000)
    assert unmeasured["outside"] is None and "no domain threshold" in unmeasured["note"]
    assert check_domain("random:64", "mse", 10.0)["outside"] is None


def test_outside_photos_are_images_of_the_generators_size():
    photos = outside_photos(64, 32)
    assert {"grace_hopper", "pink_noise", "landscape"} <= set(photos)
    for img in photos.values():
        assert img.shape == (1, 3, 64, 32) and img.min() >= -1 and img.max() <= 1 and img.std() > 0.05


def test_the_inversion_command_warns_and_records_the_verdict(tmp_path, monkeypatch, capfd):
    """run_invert on a portrait photo (matplotlib's) with the toy face model; the threshold's step count lowered to
    the test's short projection so that the wiring runs fast (the measured threshold is tested above)."""
    from hydra import compose, initialize_config_dir
    from PIL import Image

    from eval.configs import register_configs
    from inversion.run import run_invert

    monkeypatch.setitem(MODELS, "toy-faces-64", dataclasses.replace(MODELS["toy-faces-64"], domain_steps=30))
    photo = tmp_path / "portrait.png"
    Image.fromarray(((outside_photos(64, 64)["grace_hopper"][0].permute(1, 2, 0) + 1) * 127.5).to(torch.uint8)
                    .numpy()).save(photo)
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("invert", overrides=[f"image={photo}", "inversion=mse", "inversion.num_steps=30",
                                           "inversion.w_avg_samples=500", "inversion.pti.enabled=false",
                                           "logger=none", "progress=false", "threads=1"])
    results = run_invert(cfg, tmp_path / "run")
    assert results["domain"]["outside"] is True and results["domain"]["projection_psnr"] < 24.3
    assert json.loads((tmp_path / "run" / "results.json").read_text())["domain"]["outside"] is True
    from safetensors import safe_open

    with safe_open(str(tmp_path / "run" / "generator.safetensors"), framework="pt") as f:
        assert f.metadata()["outside_domain"] == "true"
    assert "OUTSIDE the domain of toy-faces-64" in capfd.readouterr().err


@pytest.mark.slow
def test_the_measured_settings_flag_a_portrait_on_the_command_line(tmp_path):
    """scripts/invert.py as a user runs it offline (inversion=mse: 500 steps, the threshold's) on a portrait."""
    photo = tmp_path / "portrait.png"
    from PIL import Image

    Image.fromarray(((outside_photos(64, 64)["grace_hopper"][0].permute(1, 2, 0) + 1) * 127.5).to(torch.uint8)
                    .numpy()).save(photo)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "invert.py"), f"image={photo}", "inversion=mse",
                           "inversion.pti.num_steps=5", "logger=none", "progress=false", f"hydra.run.dir={tmp_path}/r"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING: this photo looks OUTSIDE the domain of toy-faces-64" in proc.stderr
    assert json.loads((tmp_path / "r" / "results.json").read_text())["domain"]["outside"] is True


def test_the_editors_inversion_hands_over_the_verdict(tmp_path, monkeypatch):
    """invert_photo (what the web editor calls for an upload) gives the verdict to `on_domain`."""
    from PIL import Image

    from draggan.loading import load_generator
    from inversion.configs import InversionSettings, PTISettings
    from inversion.run import invert_photo

    monkeypatch.setitem(MODELS, "toy-faces-64", dataclasses.replace(MODELS["toy-faces-64"], domain_steps=20))
    photo = tmp_path / "noise.png"
    Image.fromarray(((outside_photos(64, 64)["pink_noise"][0].permute(1, 2, 0) + 1) * 127.5).to(torch.uint8)
                    .numpy()).save(photo)
    verdicts = []
    invert_photo(load_generator("toy-faces-64", device="cpu"), photo,
                 InversionSettings(loss="mse", num_steps=20, w_avg_samples=500, pti=PTISettings(enabled=False)),
                 on_domain=verdicts.append)
    assert len(verdicts) == 1 and verdicts[0]["outside"] is True and verdicts[0]["warning"]


def test_the_command_line_says_when_a_photo_was_not_judged(capsys):
    """A warning is a loud block on stderr; a photo the check cannot judge gets one line saying why."""
    from inversion.run import _say_outside

    _say_outside(check_domain("toy-faces-64", "mse", 17.9, num_steps=20))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["is the photo inside the generator's domain? not judged: the projection ran 20 steps, the "
                   "threshold was measured with 500"]
    _say_outside(check_domain("toy-faces-64", "mse", 17.9, num_steps=500))
    assert "WARNING: this photo looks OUTSIDE" in capsys.readouterr().err
    _say_outside(check_domain("toy-faces-64", "mse", 35.0, num_steps=500))
    assert capsys.readouterr().err == ""
