"""Running the project does not modify the clone (issue 27): on a fresh repository made of this checkout's files,
the training, export, download and drag commands write only into their run folders (`outputs/`, ignored); the
shipped weights stay as they are, and no log file appears in the repository root."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import tiny_generator
from tests.helpers.official_layout import write_official_pickle

ROOT = Path(__file__).resolve().parents[2]
RUN_FOLDERS = ("outputs/", "multirun/")  # .gitignore'd: where the commands write
CACHES = ("__pycache__/",)


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh repository holding this checkout's tracked files as they are now (committed or not)."""
    repo = tmp_path_factory.mktemp("clone") / "draggan"
    for name in _git("ls-files", "-z", cwd=ROOT).split("\0"):
        if name and (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fresh clone", cwd=repo)
    return repo


def _run(clone: Path, script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=clone, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": str(clone), "WANDB_MODE": "disabled",
                                            **(env or {})})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def assert_clean(clone: Path) -> None:
    """Nothing tracked changed, nothing untracked appeared, and every ignored thing is a run folder or a cache."""
    assert _git("status", "--porcelain", cwd=clone) == ""
    ignored = [line[3:] for line in _git("status", "--porcelain", "--ignored", cwd=clone).splitlines()]
    assert all(p.startswith(RUN_FOLDERS) or p.endswith(CACHES) for p in ignored), ignored


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def model_server(tmp_path):
    """A local HTTP server holding one file, registered as a model (the real ones need the internet)."""
    from draggan.registry import ModelInfo

    payload = bytes(range(256)) * 64
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "model.bin").write_bytes(payload)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=tmp_path / "srv"))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    info = ModelInfo("local-test", "local-test.bin", (16, 16), "test",
                     url=f"http://127.0.0.1:{httpd.server_address[1]}/model.bin",
                     sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    yield info
    httpd.shutdown()
    httpd.server_close()


def test_export_download_detector_training_and_a_drag_leave_the_clone_clean(clone, tmp_path, model_server):
    write_official_pickle(tiny_generator(16), tmp_path / "snap.pkl")
    _run(clone, "export.py", f"source={tmp_path / 'snap.pkl'}", "output=outputs/exported.safetensors")
    assert (clone / "outputs" / "exported.safetensors").is_file()
    cache = tmp_path / "cache"
    code = ("import runpy, sys\nfrom draggan.registry import MODELS, ModelInfo\n"
            f"MODELS['local-test'] = ModelInfo(**{model_server.__dict__!r})\n"
            "sys.argv = ['scripts/download.py', 'models=[local-test]']\n"
            "runpy.run_path('scripts/download.py', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(clone), "DRAGGAN_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (cache / "local-test.bin").stat().st_size == model_server.size
    shipped = (clone / "draggan/models/toyfaces-detector-64.safetensors").read_bytes()
    out = _run(clone, "train_detector.py", "iterations=1", "batch=2")
    assert f"weights: {clone / 'outputs' / 'train_detector'}" in out.stdout
    assert (clone / "draggan/models/toyfaces-detector-64.safetensors").read_bytes() == shipped
    assert list((clone / "outputs" / "train_detector").glob("*/toyfaces-detector-64.safetensors"))
    _run(clone, "drag.py", "seed=0", "points=[[32,40,32,44]]", "drag.max_steps=2", "progress=false")
    assert_clean(clone)
    assert not list(clone.glob("*.log"))


@pytest.mark.slow
def test_the_trainers_write_into_their_run_folders(clone):
    shipped = (clone / "draggan/models/uclt-toy-faces-64.safetensors").read_bytes()
    _run(clone, "train_uclt.py", "iterations=2", "batch=4", "width=32", "layers=1", "heads=2", "max_points=3")
    assert (clone / "draggan/models/uclt-toy-faces-64.safetensors").read_bytes() == shipped
    runs = list((clone / "outputs" / "train_uclt").glob("*/uclt-toy-faces-64.safetensors"))
    assert runs and runs[0].with_suffix(".json").is_file()
    _run(clone, "train.py", "train.kimg=0.016", "train.batch=8", "train.resolution=16", "train.channel_base=256",
         "train.grid_size=2", "train.snapshot_kimg=0.016", "logger=none")
    assert_clean(clone)
