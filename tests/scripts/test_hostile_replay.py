"""`scripts/hostile_replay.py`: the replay of issue 26's hostile inputs. A fast subset of its rows (each in its own
capped child: a pickle, an npz, a JSON file, downloads) in the default run; every row, the live editor's
included, under `-m slow`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.hostile_replay import BY_KEY, CASES, replay

ROOT = Path(__file__).resolve().parents[2]
FAST = ["2", "7a", "9a", "16"]  # a pickle, an npz, a JSON file, a download (the rest: their own unit tests, and -m slow)


def test_a_fast_subset_of_the_replay_holds(tmp_path):
    results = replay(FAST, workdir=tmp_path, log=lambda line: None)
    failing = {r["key"]: r for r in results if r["verdict"] != "holds"}
    assert not failing, failing
    assert all(r["growth_mb"] < 300 and r["seconds"] < BY_KEY[r["key"]].seconds for r in results)


@pytest.mark.slow
def test_every_row_of_the_replay_holds(tmp_path):
    """The lead's rows (10, 14) are reported, not judged here."""
    proc = subprocess.run([sys.executable, "scripts/hostile_replay.py", "--json", str(tmp_path / "replay.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.stdout.count("| holds") >= len([c for c in CASES if c.owner != "lead"])
