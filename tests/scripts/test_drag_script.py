"""scripts/drag.py as a user runs it: outputs, results, resume with roll-back, bad points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _drag(tmp_path, run, *overrides):
    return subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), "generator=random:64:1",
                           "drag.feature_block=3", "progress=false", f"hydra.run.dir={tmp_path / run}",
                           *overrides], cwd=tmp_path, capture_output=True, text=True)


def test_drag_writes_every_output_and_resumes(tmp_path):
    points = tmp_path / "points.json"
    points.write_text(json.dumps([[20, 30, 44, 30]]))
    r = _drag(tmp_path, "a", f"points={points}", "drag.max_steps=8")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "a"
    for name in ["before.png", "after.png", "drag.gif", "session.json", "latent.npz", "results.json"]:
        assert (out / name).is_file(), name
    assert Image.open(out / "after.png").size == (64, 64)
    results = json.loads((out / "results.json").read_text())
    session = json.loads((out / "session.json").read_text())
    assert results["steps"] == len(session["history"]) == 8
    latent = np.load(out / "latent.npz")
    assert latent["ws0"].shape == latent["ws_final"].shape
    r = _drag(tmp_path, "b", f"resume={out}", "rollback_to=3", "drag.max_steps=2", "points=[]")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "b" / "results.json").read_text())["steps"] == 6  # 4 kept + 2 new


def test_points_outside_the_image_fail_before_any_output(tmp_path):
    r = _drag(tmp_path, "c", "points=[[20,30,90,30]]")
    assert r.returncode != 0
    assert "outside the 64x64 image" in r.stderr
    assert not (tmp_path / "c" / "before.png").exists()


def test_demo_edit_on_the_embedded_model(tmp_path):
    # `make demo`'s command: the default generator is toy-faces-64, shipped with the package.
    import re

    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo:.*\n\t\$\(PY\) (scripts/drag.py .*)$", makefile, re.M).group(1)
    args = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", demo)[1:] if not a.startswith("hydra.run.dir")]
    r = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), *args, "progress=false",
                        f"hydra.run.dir={tmp_path / 'demo'}"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "untrained" not in r.stderr.lower()
    res = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert res["done"] and max(res["final_distances"]) <= 1.0
    session = json.loads((tmp_path / "demo" / "session.json").read_text())
    assert session["generator"] == "toy-faces-64"
