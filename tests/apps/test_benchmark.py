"""draggan/apps/benchmark.py below 128 px: the benchmark adapts the drag settings as the editor does."""

from __future__ import annotations

import torch

from draggan.apps.benchmark import bench_resolution, format_row


def test_the_drag_benchmark_runs_a_generator_without_the_papers_block():
    """A 64-px generator has no block 5: the editor, the floor and the full-resolution reference all take block 3
    (they crashed on the paper's block before) and agree on the tracked points."""
    row = bench_resolution(64, torch.device("cpu"), steps=1, warmup=0, handles=2, methods=("freedrag",))
    assert row["same_tracked_points"] and row["max_ws_difference"] < 1e-5
    # the ratios are of figures measured in this run, and every method asked for is timed against the same floor
    assert row["editor_over_floor"] == row["editor_s"] / row["floor_s"]
    assert row["full_res_over_editor"] == row["full_res_s"] / row["editor_s"]
    assert row["method_freedrag_over_floor"] == row["method_freedrag_s"] / row["floor_s"]
    assert "freedrag" in format_row(row)


def test_the_benchmark_says_which_row_it_times_on_stderr(capsys):
    """Rows of the large generators take minutes on a CPU: each says what it times (stderr; the rows on stdout)."""
    from draggan.apps.benchmark import bench_drag

    rows = bench_drag([64], ["cpu"], steps=1, warmup=0)
    out, err = capsys.readouterr()
    assert len(rows) == 1 and out.strip() == format_row(rows[0]).strip()
    assert err.splitlines()[0] == "bench_drag: cpu 64 px, 2 handles, fp32 ..." and "fp32: done in" in err
    bench_drag([64], ["cpu"], steps=1, warmup=0, progress=False)
    assert capsys.readouterr().err == ""
