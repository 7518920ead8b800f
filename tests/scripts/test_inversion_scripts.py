"""scripts/invert.py and scripts/edit_real.py as a user runs them (tiny settings, pixel losses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from draggan.apps.toyfaces.renderer import render_seeds

ROOT = Path(__file__).resolve().parents[2]
FAST = ["generator=random:32:0", "inversion=mse", "inversion.num_steps=20",
        "inversion.w_avg_samples=200", "inversion.pti.num_steps=10", "logger=none", "progress=false"]


def run(script, tmp_path, folder, *overrides):
    drag = ["drag.feature_block=3"] if script == "edit_real.py" else []  # the 32x32 block of a 32-px generator
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *FAST, *drag,
                           f"hydra.run.dir={tmp_path / folder}", *overrides], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def photo(tmp_path):
    img, _, _ = render_seeds([123], 64)
    path = tmp_path / "photo.png"
    Image.fromarray((img[0] * 127.5 + 128).clamp(0, 255).byte().permute(1, 2, 0).numpy()).save(path)
    return path


def test_invert_then_edit_real_reusing_it(tmp_path, photo):
    r = run("invert.py", tmp_path, "inv", f"image={photo}")
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "inv"
    for name in ["target.png", "projection.png", "reconstruction.png", "inversion.npz", "generator.safetensors",
                 "results.json"]:
        assert (out / name).is_file(), name
    res = json.loads((out / "results.json").read_text())
    assert np.isfinite(res["reconstruction"]["psnr"]) and 0 < res["reconstruction"]["ssim"] <= 1
    assert res["reconstruction"]["lpips"] is None and "LPIPS not measured" in res["lpips_note"]
    assert Image.open(out / "target.png").size == (32, 32)  # the photo as the generator sees it
    r = run("edit_real.py", tmp_path, "edit", f"inversion_dir={out}", "points=[[10,12,14,12]]", "drag.max_steps=5")
    assert r.returncode == 0, r.stderr[-3000:]
    edit = json.loads((tmp_path / "edit" / "results.json").read_text())
    assert edit["inversion"] == str(out) and edit["steps"] >= 1
    for name in ["before.png", "after.png", "drag.gif", "session.json", "latent.npz"]:
        assert (tmp_path / "edit" / name).is_file(), name


def test_edit_real_in_one_go(tmp_path, photo):
    r = run("edit_real.py", tmp_path, "one", f"image={photo}", "points=[[10,12,14,12]]", "drag.max_steps=3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "one" / "inversion" / "results.json").is_file()
    res = json.loads((tmp_path / "one" / "results.json").read_text())
    assert "reconstruction" in res["inversion"]


def test_bad_image_leaves_no_outputs(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text")
    r = run("invert.py", tmp_path, "bad", f"image={bad}")
    assert r.returncode != 0 and "could not be read as an image" in r.stderr
    assert not [p for p in (tmp_path / "bad").iterdir() if p.suffix in (".png", ".npz", ".safetensors", ".json")]


def test_reused_inversion_must_be_complete(tmp_path):
    (tmp_path / "half").mkdir()
    r = run("edit_real.py", tmp_path, "x", f"inversion_dir={tmp_path / 'half'}", "points=[[1,2,3,4]]")
    assert r.returncode != 0 and "no finished inversion" in r.stderr
