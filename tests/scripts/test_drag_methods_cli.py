"""The drag methods from the command line: scripts/drag.py and scripts/evaluate.py select them by `drag_method=`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "progress=false", *overrides], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_drag_script_runs_each_method_and_saves_it(tmp_path):
    for method in ("freedrag", "stabledrag"):
        out = tmp_path / method
        _run("drag.py", tmp_path, f"drag_method={method}", "seed=0", "points=[[32,36,32,40]]", "drag.max_steps=6",
             f"hydra.run.dir={out}")
        results = json.loads((out / "results.json").read_text())
        session = json.loads((out / "session.json").read_text())
        assert session["config"]["method"] == method and results["steps"] == len(session["history"]) >= 1
        assert (out / "after.png").is_file()
        assert len(results["final_distances"]) == 1 and results["error"] is None
    bad = subprocess.run([sys.executable, str(ROOT / "scripts/drag.py"), "drag_method=freedrag", "progress=false",
                          "drag.method_options.d_max=-1", "points=[[32,36,32,40]]", f"hydra.run.dir={tmp_path / 'bad'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "d_max" in bad.stderr


def test_evaluate_tracks_during_another_methods_drags(tmp_path):
    """The tracking protocol records the drags of the chosen method (here FreeDrag) and scores trackers on them."""
    out = tmp_path / "t"
    _run("evaluate.py", tmp_path, "benchmark=tracking", "drag_method=freedrag", "n_pairs=1", "threads=1",
         "logger=none", "benchmark.trackers=[draggan_l1,lucas_kanade]", "drag.max_steps=20", f"hydra.run.dir={out}")
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "freedrag" and results["drag_config"]["method"] == "freedrag"
    assert [r["tracker"] for r in results["rows"]] == ["freedrag (in the loop)", "draggan_l1", "lucas_kanade"]
    assert all(r["available"] and r["estimates"] > 0 for r in results["rows"])
