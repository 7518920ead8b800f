"""A benchmark split into shards (`shard=K/N`, eval/shards.py) and merged by the report equals one run of it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.report import make_report
from eval.shards import Shard, merge_shards, parse_shard, shard_device, under_torchrun

ROOT = Path(__file__).resolve().parents[2]
TINY = ["n_pairs=3", "threads=1", "progress=false", "logger=none", "examples=0", "benchmark.fid=false",
        "drag.max_steps=6"]


def test_the_shards_partition_the_pairs():
    shards = [parse_shard(f"{k}/3") for k in range(3)]
    owners = [[s.index for s in shards if s.owns(i)] for i in range(10)]
    assert owners == [[i % 3] for i in range(10)]  # every pair in exactly one shard, round robin
    assert parse_shard(None, {}) == Shard(0, 1) and parse_shard(None, {}).whole
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad, {})


def test_torchrun_sets_the_shard_and_the_device():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert parse_shard(None, env) == Shard(3, 4) and parse_shard("0/2", env) == Shard(0, 2)  # given wins
    assert under_torchrun(env) and not under_torchrun({})
    assert shard_device("cpu", env) == "cpu" and shard_device("auto", {}) == "auto"
    import torch

    assert shard_device("auto", env) == ("cuda:1" if torch.cuda.is_available() else "auto")


def _evaluate(*args: str, cwd: Path, multirun: bool = False) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), *(["-m"] if multirun else []), *TINY,
                           *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]


def _table_without_times(markdown: str) -> str:
    """report.md's tables with the time columns blanked (times are measured, not computed) and the folder's name
    left out of the title."""
    lines, timed = [], []
    for line in markdown.splitlines()[1:]:
        cells = line.split("|")
        if line.startswith(("| method", "| tracker")):
            timed = [i for i, c in enumerate(cells) if "time" in c]
        if line.startswith("|"):
            cells = ["~" if i in timed else c for i, c in enumerate(cells)]
        lines.append("|".join(cells))
    return "\n".join(lines)


def test_two_shards_merged_by_the_report_equal_one_run(tmp_path):
    """Landmarks on the embedded model, 3 pairs: one run, and a multirun over shard=0/2,1/2 (Hydra's launcher);
    the report of the shards' folder has the one run's table (times aside) and its per-pair records."""
    one, two = tmp_path / "one", tmp_path / "two"
    _evaluate("benchmark.num_points=[1,5]", f"hydra.run.dir={one}", cwd=tmp_path)
    _evaluate("benchmark.num_points=[1,5]", "shard=0/2,1/2", f"hydra.sweep.dir={two}", cwd=tmp_path, multirun=True)
    shards = sorted(two.rglob("results.json"))
    assert len(shards) == 2
    parts = [json.loads(p.read_text()) for p in shards]
    assert sorted(len(p["pairs"]) for p in parts) == [2 * 1, 2 * 2]  # 2 point sets; pairs {0, 2} and {1}
    single = json.loads((one / "results.json").read_text())
    ra, rb = make_report(one, tmp_path / "report_one"), make_report(two, tmp_path / "report_two")
    assert ra["runs"] == rb["runs"] == 1
    assert _table_without_times(ra["markdown"]) == _table_without_times(rb["markdown"])
    merged = merge_shards(parts)
    assert _timeless(merged["rows"]) == _timeless(single["rows"])  # bit for bit: the same means in the same order
    assert [{k: v for k, v in p.items() if k != "seconds"} for p in merged["pairs"]] == \
        [{k: v for k, v in p.items() if k != "seconds"} for p in single["pairs"]]


@pytest.mark.parametrize("benchmark", ["paired", pytest.param("tracking", marks=pytest.mark.slow)])
def test_paired_and_tracking_shards_merge_to_one_run(benchmark, tmp_path):
    from hydra import compose, initialize_config_dir

    from draggan.loggers import NullLogger
    from eval.configs import register_configs
    from eval.run import run_evaluation

    register_configs()
    extra = ["benchmark.paired_points=4"] if benchmark == "paired" else ["benchmark.trackers=[lucas_kanade]"]
    runs = {}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for shard in (None, "0/2", "1/2"):
            cfg = compose("evaluate", overrides=[f"benchmark={benchmark}", *TINY, *extra]
                          + ([f"shard={shard}"] if shard else []))
            runs[shard] = run_evaluation(cfg, tmp_path / str(shard).replace("/", "-"), logger=NullLogger())
    merged = merge_shards([runs["0/2"], runs["1/2"]])
    single = runs[None]
    if benchmark == "paired":
        assert _timeless(merged["rows"]) == _timeless(single["rows"])
        assert [p["pair"] for p in merged["pairs"]] == [0, 1, 2]
    else:  # weighted by estimates: equal up to the order of a floating-point sum
        assert [r["tracker"] for r in merged["rows"]] == [r["tracker"] for r in single["rows"]]
        for m, s in zip(merged["rows"], single["rows"]):
            assert m["estimates"] == s["estimates"] > 0
            for key in [k for k in s if k == "mean_error" or k.startswith("within_")]:
                assert m[key] == pytest.approx(s[key], rel=1e-9, abs=1e-12), key
        assert merged["steps_mean"] == pytest.approx(single["steps_mean"], rel=1e-12)


def test_merging_refuses_incomplete_or_mixed_shards():
    part = dict(benchmark="paired", generator="g", n_pairs=2, seed=0, method="draggan", tracker="none",
                available=True, rows=[dict(flow="dis", mse=1.0, steps_mean=1.0)],
                pairs=[dict(pair=0, mse=1.0, steps=1)], shard=dict(index=0, count=2, pairs=1))
    with pytest.raises(ValueError, match="do not make a whole run"):
        merge_shards([part])
    other = dict(part, seed=1, shard=dict(index=1, count=2, pairs=1), pairs=[dict(pair=1, mse=3.0, steps=2)])
    with pytest.raises(ValueError, match="differ in seed"):
        merge_shards([part, other])
    ok = merge_shards([part, dict(other, seed=0)])
    assert ok["rows"] == [dict(flow="dis", mse=2.0, steps_mean=1.5)] and "shard" not in ok
    no_source = dict(part, rows=[dict(flow="dis", mse=1.0, steps_mean=1.0, sharpness=0.5)])
    with pytest.raises(ValueError, match="sharpness"):  # a new metric without its per-pair records fails loudly
        merge_shards([no_source, dict(other, seed=0, rows=no_source["rows"])])


def test_fid_of_shards_is_computed_from_their_features():
    from eval.fid import frechet_distance
    from eval.shards import _merged_fid

    rng = np.random.default_rng(0)
    after, before = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)) + 0.5
    features = {k: {"1_after": after[k::2], "1_before": before[k::2], "1_pairs": np.arange(6)[k::2]} for k in (0, 1)}
    assert _merged_fid(features, 1, 2) == pytest.approx(frechet_distance(after, before), rel=1e-9)
    assert _merged_fid({0: features[0]}, 1, 2) is None  # a shard without its features: no FID, not a wrong one


@pytest.mark.slow
def test_torchrun_runs_one_shard_per_process_and_the_report_merges_them(tmp_path):
    """`torchrun --nproc-per-node=2 scripts/evaluate.py ...` on the CPU: each process takes its rank's shard and
    its own folder in the shared run folder; the report of that folder equals one run (times aside)."""
    one, two = tmp_path / "one", tmp_path / "two"
    _evaluate("benchmark.num_points=[1]", f"hydra.run.dir={one}", cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(ROOT / "scripts" / "evaluate.py"), *TINY, "benchmark.num_points=[1]",
                           f"hydra.run.dir={two}"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.parent.name for p in two.rglob("results.json")) == ["shard-0-of-2", "shard-1-of-2"]
    ra, rb = make_report(one, tmp_path / "report_one"), make_report(two, tmp_path / "report_two")
    assert _table_without_times(ra["markdown"]) == _table_without_times(rb["markdown"])
