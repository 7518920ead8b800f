"""scripts/drag.py as a user runs it: outputs, results, resume with roll-back, bad points."""

from __future__ import annotations

import json
import os
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
    r = _drag(tmp_path, "b", f"resume={out}", "rollback_to=3", "drag.max_steps=2")
    assert r.returncode == 0, r.stderr
    resumed = json.loads((tmp_path / "b" / "results.json").read_text())
    assert resumed["steps"] == 6 and not resumed["new_segment"]  # 4 kept + 2 new
    # before.png stays the session's start (not the step it was rolled back to)
    assert _same_image(tmp_path / "b" / "before.png", out / "before.png")
    assert json.loads((tmp_path / "b" / "session.json").read_text())["generator"] == "random:64:1"


def test_resume_with_new_points_starts_a_new_segment_where_the_session_is(tmp_path):
    r = _drag(tmp_path, "a", "points=[[20,30,30,30]]", "drag.max_steps=4")
    assert r.returncode == 0, r.stderr
    # no generator=: the saved session's own; new points: a new segment from the saved result
    r = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), f"resume={tmp_path / 'a'}",
                        "points=[[40,20,40,26]]", "drag.feature_block=3", "drag.max_steps=3", "progress=false",
                        f"hydra.run.dir={tmp_path / 'b'}"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    session = json.loads((tmp_path / "b" / "session.json").read_text())
    assert res["new_segment"] and res["resumed_from"] == str(tmp_path / "a") and res["targets"] == [[40.0, 26.0]]
    assert session["handles"] == [[40.0, 20.0]] and session["steps"] == 3 and session["generator"] == "random:64:1"
    assert _same_image(tmp_path / "b" / "before.png", tmp_path / "a" / "after.png")  # it starts where a ended
    # settings that a plain resume could not honour are refused in one line, not ignored
    r = _drag(tmp_path, "c", f"resume={tmp_path / 'a'}", "drag.lr=0.1")
    assert r.returncode == 1 and _one_line(r.stderr).startswith("drag.py: error: resume continues")


def _same_image(a, b) -> bool:
    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def _one_line(stderr: str) -> str:
    """The command's error, which must be its only line on stderr besides the log."""
    lines = [line for line in stderr.splitlines() if line.strip() and " - " not in line[:60]]  # not log records
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_points_outside_the_image_fail_before_any_output(tmp_path):
    r = _drag(tmp_path, "c", "points=[[20,30,90,30]]")
    assert r.returncode != 0
    assert "outside the 64x64 image" in _one_line(r.stderr)
    assert not (tmp_path / "c" / "before.png").exists()


def test_bad_input_is_one_line_on_stderr_and_a_non_zero_exit(tmp_path):
    (tmp_path / "notes.txt").write_text("not a network")
    Image.new("L", (32, 32), 255).save(tmp_path / "small_mask.png")
    cases = {"points=[32,40,32,44]": "for one pair write 'points=[[32,40,32,44]]'",
             "generator=no-such-model": "neither a file nor a registered model",
             f"generator={tmp_path / 'notes.txt'}": "not a network pickle nor a safetensors file",
             f"mask={tmp_path / 'small_mask.png'}": "is 32x32, the image is 64x64"}
    for i, (override, message) in enumerate(cases.items()):
        args = [override] if override.startswith("points") else [override, "points=[[20,30,24,30]]"]
        r = _drag(tmp_path, f"bad{i}", *args)
        assert r.returncode == 1 and message in _one_line(r.stderr), (override, r.stderr)
    env = dict(os.environ, HYDRA_FULL_ERROR="1")  # for developers: the whole traceback
    r = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), "points=[32,40,32,44]", "generator=random:64:1",
                        f"hydra.run.dir={tmp_path / 'full'}"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "Traceback" in r.stderr and "for one pair write" in r.stderr


def test_generator_as_a_path_or_url_and_a_stalled_drag_says_so(tmp_path):
    """`generator=` takes a file or an http(s) URL as typed; a drag that cannot move says so on screen and in
    results.json (a learning rate of 1e-9: the latent cannot change; DragGAN, whose tracked handles then stand still)."""
    import functools
    import http.server
    import threading

    from draggan import save_generator
    from draggan.download import url_cache_path
    from tests.conftest import tiny_generator

    save_generator(tiny_generator(32), tmp_path / "www" / "net.safetensors")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/net.safetensors"
    env = dict(os.environ, DRAGGAN_CACHE=str(tmp_path / "cache"))
    try:
        r = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), f"generator={url}", "points=[[10,12,20,12]]",
                            "drag_method=draggan", "drag.lr=1e-9", "drag.stall_steps=4", "drag.max_steps=6",
                            f"hydra.run.dir={tmp_path / 'u'}"],
                           cwd=tmp_path, capture_output=True, text=True, env=env)
    finally:
        httpd.shutdown()
    assert r.returncode == 0, r.stderr
    assert (url_cache_path(url, tmp_path / "cache")).is_file()  # downloaded once, cached under the URL's hash
    res = json.loads((tmp_path / "u" / "results.json").read_text())
    assert res["steps"] == 6 and not res["done"] and "stalled: no handle has moved" in res["stalled"]
    assert "STALLED" in r.stderr and "the drag stalled" in r.stdout  # the progress bar and the last line
    r = _drag(tmp_path, "p", f"generator={tmp_path / 'www' / 'net.safetensors'}", "points=[[10,12,14,12]]",
              "drag.max_steps=2", "drag.feature_block=2")
    assert r.returncode == 0, r.stderr
    session = json.loads((tmp_path / "p" / "session.json").read_text())
    assert session["generator"] == str(tmp_path / "www" / "net.safetensors")


def test_the_official_preset_on_the_default_model(tmp_path):
    """`drag=official` as the README shows it: the official lr, not toy-faces-64's, and the stated adaptation."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), "drag=official", "points=[[32,40,32,44]]",
                        "drag.max_steps=5", "progress=false", f"hydra.run.dir={tmp_path / 'o'}"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "o" / "session.json").read_text())["config"]
    assert config["lr"] == 1e-3 and config["tracking_distance"] == "l2" and config["official_stop_rule"]
    assert config["min_radius"] == 1.0 and config["feature_block"] == 3  # r1 rounds to 0 px at 64 px; no block 5
    adaptations = json.loads((tmp_path / "o" / "results.json").read_text())["adaptations"]
    assert any("min_radius=1" in a for a in adaptations) and "min_radius=1" in r.stdout + r.stderr  # and the log


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
    text = (tmp_path / "demo" / "session.json").read_text()
    session = json.loads(text, parse_constant=_no_constant)  # strict JSON: other tools reject NaN
    assert session["generator"] == "toy-faces-64"
    assert session["history"][-1]["done"] and session["history"][-1]["loss"] is None  # the stop check: no loss


def _no_constant(name):
    raise AssertionError(f"session.json holds {name}, which is not JSON")
