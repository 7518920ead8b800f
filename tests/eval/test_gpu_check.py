"""`make gpu-check` cannot run here (no GPU), so its checks run on the CPU against the CPU in quick
mode: the code of every check stays importable and working, and the comparisons it makes hold."""

from __future__ import annotations

import json

import pytest

from eval.gpu_check import CHECKS, run_checks

FAST = ["generator", "drag", "full_resolution_reference", "web_editor", "bench_drag", "profile"]


def test_the_fast_checks_pass_on_the_cpu(tmp_path, capsys):
    results = run_checks("cpu", quick=True, resolutions=[128], only=FAST, out_dir=tmp_path)
    status = {r.name: r.status for r in results}
    assert status == {**{n: "ok" for n in FAST}, "profile": "skipped"}, [(r.name, r.detail) for r in results]
    bench = next(r for r in results if r.name == "bench_drag").metrics["rows"]
    assert {row["handles"] for row in bench} == {2, 17} and all(row["same_tracked_points"] for row in bench if
                                                             "same_tracked_points" in row)
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [r["name"] for r in saved["results"]] == [n for n in CHECKS if n in FAST]
    assert "| drag | ok |" in (tmp_path / "gpu_check.md").read_text()
    shown = capsys.readouterr()
    assert "drag" in shown.out  # one line per check on screen, and on stderr which one runs (minutes on a GPU)
    assert [n for n in FAST if f"gpu-check: {n} ..." in shown.err.splitlines()] == FAST, shown.err


@pytest.mark.slow
def test_every_check_runs_on_the_cpu(tmp_path):
    results = run_checks("cpu", quick=True, resolutions=[128], out_dir=tmp_path)
    assert not [(r.name, r.detail) for r in results if r.status == "FAIL"]


def test_a_failing_check_is_reported_and_the_others_go_on(tmp_path, monkeypatch, capsys):
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(CHECKS, "generator", broken)
    results = run_checks("cpu", quick=True, resolutions=[], only=["generator", "full_resolution_reference"],
                         progress=False)
    assert [(r.name, r.status) for r in results] == [("generator", "FAIL"), ("full_resolution_reference", "ok")]
    assert "boom" in results[0].detail and results[0].metrics["traceback"]
    assert capsys.readouterr().err == ""  # progress=false


def test_unknown_checks_are_refused():
    with pytest.raises(ValueError, match="unknown checks"):
        run_checks("cpu", only=["nope"])
