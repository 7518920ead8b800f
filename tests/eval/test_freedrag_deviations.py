"""The FreeDrag deviation ablation (eval/freedrag_deviations.py, scripts/freedrag_deviations.py): each row changes
one rule of the recommended settings to the authors', the table reports paired differences, and the script writes
a results file that a rerun completes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from draggan.methods.freedrag import FreeDragOptions
from draggan.settings import DragConfig
from eval.freedrag_deviations import (
    AUTHORS_LR,
    DEVIATIONS,
    library_keeps,
    markdown_table,
    paired,
    row_configs,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("feature_block", "r1", "r2", "radius_unit", "lambda_mask", "mask_loss", "mask_margin", "optimize_ws",
          "max_steps", "handle_stop", "handle_patience", "method")


def test_each_row_sets_one_rule_to_the_authors_and_keeps_the_rest(toy):
    rows = {key: cfg for key, cfg, _ in row_configs(toy)}
    kept = [d for d in DEVIATIONS if library_keeps(d.key)]
    assert list(rows) == ["recommended", *[d.key for d in kept], "official"]
    # the rules the default follows since the first ablation (docs/evaluation.md) have no row of their own
    assert not {"patch_px", "arrived_in_loss", "late_cut"} & set(rows) and {"sampler", "lr", "l_expected"} <= set(rows)
    base, _ = rows["recommended"].adapted_to(toy)
    assert base.method == "freedrag" and base.lr == 1e-2 and base.stop_distance == 0.71
    for d in kept:
        cfg, _ = rows[d.key].adapted_to(toy)
        assert all(getattr(cfg, k) == getattr(base, k) for k in SHARED), d.key
        assert cfg.stop_distance == base.stop_distance, d.key
        if d.key == "lr":
            assert cfg.lr == AUTHORS_LR and cfg.method_options == base.method_options
        else:
            assert cfg.lr == base.lr
            changed = {k for k in {*cfg.method_options, *base.method_options}
                       if cfg.method_options.get(k) != base.method_options.get(k)}
            assert changed == {d.key}, (d.key, changed)
            assert getattr(FreeDragOptions(**cfg.method_options), d.key) != getattr(FreeDragOptions(), d.key)
    assert rows["official"] == DragConfig.preset("official", generator=toy, method="freedrag")
    official = rows["official"].method_options
    for d in DEVIATIONS:  # the rule of each row, and each rule the default follows, is the official preset's
        if d.key != "lr":
            value = rows[d.key].method_options[d.key] if d.key in rows else getattr(FreeDragOptions(), d.key)
            assert value == official[d.key], d.key
    assert rows["official"].lr == AUTHORS_LR


def test_the_table_gives_paired_differences_and_reads_the_defaults():
    def t1(md, out):
        return {"1": dict(md=float(np.mean(md)), steps=10.0, change_outside=float(np.mean(out)), pair_md=md,
                          pair_change_outside=out)}

    results = dict(mouth_seeds=[0], rows=[
        dict(key="recommended", table1=t1([1.0, 2.0, 3.0], [0.1, 0.1, 0.1]), mouth={"0": dict(left=0.3, face_left=[0.2, 0.4])}),
        dict(key="sampler", table1=t1([1.5, 2.5, 4.0], [0.1, 0.2, 0.3]), mouth={"0": dict(left=0.25, face_left=[0.2, 0.3])}),
        dict(key="mask_term", mask=dict(dist_masked=1.25, reach_ratio=0.5, outside_masked=0.75, outside_ratio=0.25,
                                        change_outside_masked=0.0125)),
    ])
    d = paired([1.5, 2.5, 4.0], [1.0, 2.0, 3.0])
    assert d["n"] == 3 and d["mean"] == pytest.approx(2 / 3) and d["se"] == pytest.approx(np.std([.5, .5, 1], ddof=1) / 3 ** .5)
    table = markdown_table(results)
    lines = table.splitlines()
    assert len(lines) == 5 and all(line.count("|") == 10 for line in lines)
    assert "2.67 (+0.67 ± 0.17)" in lines[3] and "0.200 (+0.100 ± 0.058)" in lines[3] and "0.250 (-0.050 ± 0.050)" in lines[3]
    assert "1.25 px (0.50); 0.75 px (0.25); 0.0125" in lines[4] and "(no mask" in lines[4]
    assert library_keeps("sampler") == (FreeDragOptions().sampler != "raw")
    assert ("kept" if library_keeps("sampler") else "dropped") in lines[3]
    assert lines[2].startswith("| recommended (the library's default) |")
    # a file measured from earlier recommended settings names them; a rule the default now follows says so
    results["base_label"] = "recommended before the switch"
    results["rows"].append(dict(key="late_cut", table1=t1([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])))
    lines = markdown_table(results).splitlines()
    assert lines[2].startswith("| recommended before the switch |")
    assert lines[-1].endswith("| dropped: the default is the authors' rule |") and not library_keeps("late_cut")


@pytest.mark.slow
def test_the_script_writes_its_rows_and_a_rerun_completes_them(tmp_path):
    out = tmp_path / "deviations.json"
    small = [sys.executable, "scripts/freedrag_deviations.py", "--pairs", "1", "--points", "1", "--faces", "1",
             "--mouth-seeds", "0", "--mask-faces", "0", "--out", str(out)]
    subprocess.run([*small, "--rows", "recommended"], cwd=ROOT, check=True, capture_output=True)
    first = json.loads(out.read_text())
    assert [r["key"] for r in first["rows"]] == ["recommended"]
    assert first["torch"] and first["date"] and len(first["commands"]) == 1
    subprocess.run([*small, "--rows", "recommended", "arrival"], cwd=ROOT, check=True, capture_output=True)
    second = json.loads(out.read_text())
    rows = {r["key"]: r for r in second["rows"]}
    assert set(rows) == {"recommended", "arrival"} and len(second["commands"]) == 2
    assert rows["recommended"]["table1"] == first["rows"][0]["table1"]  # kept, not measured again
    assert rows["arrival"]["config"]["method_options"] == {"arrival": "official"}
    # a file of another sample is refused, not completed with rows of other faces
    other = subprocess.run([*small, "--seed", "7", "--rows", "recommended"], cwd=ROOT, capture_output=True, text=True)
    assert other.returncode == 1 and "measured with --seed 0, not 7" in other.stderr
    assert json.loads(out.read_text()) == second


def test_the_documented_table_is_the_one_the_results_file_gives():
    """docs/evaluation.md's region `freedrag-deviations` is the table `markdown_table` writes from the committed
    results (scripts/make_docs.py writes it; tests/test_docs.py checks every region)."""
    from eval.doc_tables import REGIONS

    doc = (ROOT / "docs/evaluation.md").read_text()
    for region, name in (("freedrag-deviations", "freedrag-deviations.json"),
                         ("freedrag-patch-px", "freedrag-patch-px.json"),
                         ("freedrag-deviations-before", "freedrag-deviations-before-switch.json")):
        results = json.loads((ROOT / "docs/results" / name).read_text())
        assert REGIONS[region]() == markdown_table(results)
        assert f"<!-- results: {region} -->\n" + markdown_table(results) + "<!-- /results -->" in doc
    # today's table has a row for every rule the default departs from; the first one had every rule
    today = {r["key"] for r in json.loads((ROOT / "docs/results/freedrag-deviations.json").read_text())["rows"]}
    assert today == {"recommended", *[d.key for d in DEVIATIONS if library_keeps(d.key)], "official"}
    assert {r["key"] for r in results["rows"]} == {"recommended", *[d.key for d in DEVIATIONS], "official"}
    assert "before the switch" in results["base_label"]
