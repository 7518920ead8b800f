"""scripts/train_chunk.sh on the CPU: a tiny model, two chunks, the second resuming from the first's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from draggan.apps.training.state import read_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ["train.resolution=64", "train.channel_base=256", "train.channel_max=16", "train.batch=8",
        "train.mixed_precision=none", "train.grid_size=2", "train.threads=1"]


def chunk(state: Path, out: Path) -> str:
    env = dict(os.environ, STATE=str(state), OUT=str(out), MINUTES="0.05", DEVICE="cpu", GATES="0",
               PYTHON=sys.executable)
    done = subprocess.run(["bash", "scripts/train_chunk.sh", *TINY], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_two_chunks_on_the_cpu(tmp_path):
    first = chunk(tmp_path / "nothing", tmp_path / "one")
    assert "a new training" in first
    files = sorted(p.name for p in (tmp_path / "one" / "training-state").iterdir())
    assert files == ["D.safetensors", "G.safetensors", "G_ema.safetensors", "state.safetensors"]
    assert all(p.stat().st_size <= 16 * 2 ** 20 for p in (tmp_path / "one").rglob("*"))
    second = chunk(tmp_path / "one", tmp_path / "two")
    assert "resuming from" in second

    def nimg(folder):
        with safe_open(str(folder / "training-state" / "state.safetensors"), framework="pt") as f:
            return json.loads(f.metadata()["counters"])["nimg"]
    assert nimg(tmp_path / "two") > nimg(tmp_path / "one") > 0  # the second chunk continued the first's count
    assert read_config(tmp_path / "two" / "training-state")["resolution"] == 64
