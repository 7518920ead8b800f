"""scripts/evaluate.py and scripts/report.py end to end: W&B offline, determinism, a submitit sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAST = ["n_pairs=1", "threads=1", "progress=false"]


def evaluate(*args: str, cwd: Path, multirun: bool = False) -> subprocess.CompletedProcess:
    flags = ["-m"] if multirun else []
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), *flags, *FAST, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_landmarks_run_writes_results_examples_and_wandb_and_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    evaluate("benchmark.num_points=[1]", "examples=1", f"hydra.run.dir={a}", cwd=tmp_path)
    evaluate("benchmark.num_points=[1]", "examples=0", "logger=none", f"hydra.run.dir={b}", cwd=tmp_path)
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ra["benchmark"] == "landmarks" and ra["tracker"] == "draggan_l1" and ra["available"]
    row = ra["rows"][0]
    assert row["num_points"] == 1 and row["md_no_edit"] > 0 and row["fid"] is None
    assert row["change_outside"] > 0 and row["lpips_outside"] is None and row["locality_margin_px"] == 8
    assert "pt_inception" in ra["fid_note"] and "LPIPS" in ra["lpips_note"]
    assert "| points | MD edit (px) | MD no edit (px) | ratio | change outside |" in (a / "results.md").read_text()
    assert sorted(p.suffix for p in (a / "examples").iterdir()) == [".gif", ".png"]
    assert list((a / "wandb").glob("offline-run-*")), "W&B offline run folder missing"
    timeless = lambda r: [{k: v for k, v in x.items() if "seconds" not in k} for x in r["rows"]]  # noqa: E731
    assert timeless(ra) == timeless(rb)  # same seed, same table
    assert [{k: v for k, v in p.items() if k != "seconds"} for p in ra["pairs"]] == \
        [{k: v for k, v in p.items() if k != "seconds"} for p in rb["pairs"]]


def test_submitit_sweep_then_report(tmp_path):
    sweep = tmp_path / "sweep"
    evaluate("hydra/launcher=submitit_local", "benchmark=paired", "drag_method=draggan", "tracker=none,dis,raft_small",
             "benchmark.paired_points=4", "drag.max_steps=4", "logger=none", "examples=0",
             f"hydra.sweep.dir={sweep}", "hydra.launcher.timeout_min=10", cwd=tmp_path,
             multirun=True)
    results = sorted(sweep.rglob("results.json"))
    assert len(results) == 3
    by = {json.loads(p.read_text())["tracker"]: json.loads(p.read_text()) for p in results}
    assert by["none"]["available"] and by["dis"]["available"]
    assert not by["raft_small"]["available"] and "raft_small_C_T_V2" in by["raft_small"]["reason"]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), str(sweep)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (sweep / "report.md").read_text()
    assert "Paired image reconstruction" in report and "| change outside | LPIPS outside |" in report
    assert all(by[t]["rows"][0]["change_outside"] > 0 for t in ("none", "dis"))
    for name in ("none", "dis", "raft_small"):
        assert f"| {name} |" in report
    assert "| raft_small | unavailable |" in report
    assert (sweep / "report_paired.png").stat().st_size > 1000


def test_an_unavailable_tracker_says_why_and_a_run_that_measured_nothing_fails(tmp_path):
    """raft_small without its weights: the reason on screen and in results.md, and exit code 1 (a sweep goes on,
    see test_submitit_sweep_then_report)."""
    out = tmp_path / "raft"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), *FAST, "tracker=raft_small",
                           "logger=none", f"hydra.run.dir={out}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TORCH_HOME=str(tmp_path / "torch")))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "raft_small_C_T_V2" in proc.stdout and "evaluate.py: error: nothing was measured" in proc.stderr
    assert "Traceback" not in proc.stderr
    md = (out / "results.md").read_text()
    assert "Not measured:" in md and "tracker raft_small is unavailable" in md and "raft_small_C_T_V2" in md
    results = json.loads((out / "results.json").read_text())
    assert not results["measured"] and results["notes"]
