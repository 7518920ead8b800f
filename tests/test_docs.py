"""The docs' figures equal their results files (eval/doc_tables.py, scripts/make_docs.py), the README's test count is
the suite's own, and the toy model's pictures are large enough to see."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from eval.doc_tables import DOCS, REGION, REGIONS, load, rewrite

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("doc", DOCS)
def test_every_generated_region_equals_its_results(doc):
    text = (ROOT / doc).read_text()
    assert REGION.search(text), f"{doc} has no generated region"
    assert rewrite(text) == text, f"{doc} differs from docs/results: run python scripts/make_docs.py"


def test_every_region_is_used_once_and_the_check_command_agrees():
    used = [m.group(2) for doc in DOCS for m in REGION.finditer((ROOT / doc).read_text())]
    assert sorted(used) == sorted(REGIONS), "a region written nowhere, or twice"
    proc = subprocess.run([sys.executable, "scripts/make_docs.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr


def test_a_changed_result_changes_every_place_it_is_shown(monkeypatch):
    """One record, several places: FreeDrag's one-point steps are in Table 1, the README's table and the cost
    sentence; a wrong figure in a doc is found."""
    import eval.doc_tables as dt

    real = dt.load

    def changed(name):
        data = real(name)
        if name == "table1-shipped.json":
            next(r for r in data["runs"] if r["key"] == "freedrag")["steps"]["1"] = 99.9
        return data

    monkeypatch.setattr(dt, "load", changed)
    for region in ("table1", "readme-summary", "freedrag-cost"):
        assert "99.9" in dt.REGIONS[region](), region
    text = (ROOT / "README.md").read_text()
    assert rewrite(text) != text


def test_the_readme_gives_the_suites_own_count_and_time():
    """The count and time of the recorded run (a provisional record, counted but not yet run, gives no time)."""
    record = load("test_suite.json")
    sentence = re.search(r"`make test` runs the fast tier \((\d+) tests(?:, (\d+) skipped)?, (?:([\d.]+) minutes"
                         r"|(not yet timed))", (ROOT / "README.md").read_text())
    assert sentence, "the README's test sentence is missing"
    assert int(sentence.group(1)) == record["passed"] and int(sentence.group(2) or 0) == record["skipped"]
    if record.get("provisional"):
        assert sentence.group(4) and record["seconds"] == 0
    else:
        assert float(sentence.group(3)) == round(record["seconds"] / 60, 1) and record["seconds"] > 0


def test_the_recorded_count_is_the_suites_selection():
    """The default tier collects as many tests as the record ran (a stale record fails: `make test-record`)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    match = re.search(r"(\d+)/\d+ tests collected \((\d+) deselected\)", proc.stdout)
    assert match, proc.stdout[-2000:]
    record = load("test_suite.json")
    assert int(match.group(1)) == record["passed"] + record["skipped"] + record["xfailed"]
    assert int(match.group(2)) == record["deselected"]


@pytest.mark.parametrize("picture", ["draggan/models/toy-faces-64-samples.png",
                                     "draggan/models/toy-faces-64-seed1-samples.png", "docs/demo_edit.png",
                                     "docs/evaluation/example_5pt.png"])
def test_the_toy_models_pictures_show_each_pixel_at_least_twice_as_large(picture):
    """64-px faces in the docs are upscaled by whole numbers with nearest neighbour: blocks of equal pixels."""
    import numpy as np

    pixels = np.asarray(Image.open(ROOT / picture).convert("RGB"))
    blocks = pixels.reshape(pixels.shape[0] // 2, 2, pixels.shape[1] // 2, 2, 3)
    assert (blocks == blocks[:, :1, :, :1]).mean() > 0.99, picture


def test_the_results_files_say_how_they_were_measured():
    for path in sorted((ROOT / "docs" / "results").glob("*.json")):
        data = json.loads(path.read_text())
        parts = [data] + [v for v in data.values() if isinstance(v, dict) and "torch" in v]
        assert any("torch" in p for p in parts), f"{path.name} does not say which torch measured it"
