"""draggan/apps/benchmark.py below 128 px: the benchmark adapts the drag settings as the editor does."""

from __future__ import annotations

import torch

from draggan.apps.benchmark import bench_resolution


def test_the_drag_benchmark_runs_a_generator_without_the_papers_block():
    """A 64-px generator has no block 5: the editor, the floor and the full-resolution reference all take block 3
    (they crashed on the paper's block before) and agree on the tracked points."""
    row = bench_resolution(64, torch.device("cpu"), steps=1, warmup=0, handles=2)
    assert row["same_tracked_points"] and row["max_ws_difference"] < 1e-5
    assert row["editor_s"] > 0 and row["floor_s"] > 0 and row["full_res_s"] > 0
