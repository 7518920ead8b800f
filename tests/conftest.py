"""Shared fixtures: reference generators from tests/fixtures, tiny random generators."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from draggan.networks import Generator

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STYLEGAN2 = FIXTURES / "stylegan2"
OFFICIAL_EXTRA = FIXTURES / "official_extra"


def load_fixture_generator(name: str, folder: Path = STYLEGAN2) -> tuple[Generator, dict, dict]:
    """(generator with the fixture's weights, meta, reference arrays)."""
    meta = json.loads((folder / f"{name}_meta.json").read_text())
    G = Generator(**meta["init_kwargs"]).eval().requires_grad_(False)
    state = {k: torch.from_numpy(v) for k, v in np.load(folder / f"{name}_weights.npz").items()}
    G.load_state_dict(state, strict=True)
    ref = dict(np.load(folder / f"{name}_reference.npz"))
    return G, meta, ref


def tiny_generator(resolution: int = 32, *, seed: int = 0, c_dim: int = 0, square: bool = True, **synthesis) -> Generator:
    """A small random generator whose biases, noise strengths and w_avg are non-trivial."""
    torch.manual_seed(seed)
    syn = dict(channel_base=256, channel_max=16, num_fp16_res=0, conv_clamp=256, **synthesis)
    G = Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs=syn, square=square)
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if "resample_filter" not in name:
                t.add_(0.2 * torch.randn_like(t))
    return G.eval().requires_grad_(False)


@pytest.fixture
def v128():
    return load_fixture_generator("v128")


@pytest.fixture(autouse=True)
def _temporary_files_in_pytests_folder(tmp_path_factory, monkeypatch):
    """What the code under test puts in the system's temporary folder (an editor's tab folders, a download's
    staging) goes under pytest's own temporary folder, so that a test that stops midway leaves nothing in /tmp
    (pytest keeps its last three runs' folders); child processes get it as TMPDIR."""
    folder = str(tmp_path_factory.mktemp("system-tmp"))
    monkeypatch.setattr(tempfile, "tempdir", folder)
    monkeypatch.setenv("TMPDIR", folder)  # and the child processes a test starts


@pytest.fixture(autouse=True)
def _registries_as_shipped():
    """Methods and trackers that a test registers are gone after it: the next test sees the shipped ones."""
    from draggan.methods import registry
    from eval import trackers

    registry.available()  # the shipped methods are registered before the snapshot
    methods, tracker_table = dict(registry._METHODS), dict(trackers._TRACKERS)
    yield
    registry._METHODS.clear()
    registry._METHODS.update(methods)
    trackers._TRACKERS.clear()
    trackers._TRACKERS.update(tracker_table)


# ------------------------------------------------------------------ the suite's own figures (README, "Tests")

def pytest_addoption(parser):
    parser.addoption("--record-suite", metavar="PATH", default=None,
                     help="after a whole default run that passed, write its test count and time to PATH as JSON "
                          "(docs/results/test_suite.json, which the README's sentence is written from)")


_SUITE_START: dict[str, float] = {}  # when the session started, and the machine's load then


def pytest_sessionstart(session):
    import os
    import time

    _SUITE_START.update(time=time.monotonic(), load=os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0)


def _default_marks(config) -> str:
    """The `-m` expression that the project's addopts give the default run ('not slow and not fuzz')."""
    addopts = list(config.getini("addopts"))
    return addopts[addopts.index("-m") + 1] if "-m" in addopts[:-1] else ""


def pytest_deselected(items):
    _SUITE_START["deselected"] = _SUITE_START.get("deselected", 0) + len(items)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist (`make test` runs it): the workers deselect, the record counts what one of them deselected."""
    _SUITE_START["deselected"] = getattr(node, "workeroutput", {}).get("deselected", _SUITE_START.get("deselected"))


def pytest_sessionfinish(session, exitstatus):
    path = session.config.getoption("--record-suite")
    if not path:
        return
    if hasattr(session.config, "workeroutput"):  # an xdist worker: the controller writes the record
        session.config.workeroutput["deselected"] = _SUITE_START.get("deselected", 0)
        return
    import datetime
    import os
    import time

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    whole = not session.config.args or [Path(a).resolve() for a in session.config.args] == [Path(__file__).parent]
    marks = session.config.getoption("markexpr")
    default_tier = marks == _default_marks(session.config) and not session.config.getoption("keyword")
    if exitstatus != 0 or not whole or not default_tier:
        reporter.write_line(f"--record-suite: not recorded (only a whole default run that passes is: exit status "
                            f"{int(exitstatus)}, arguments {session.config.args}, -m {marks!r})")
        return
    count = {k: len(reporter.stats.get(k, [])) for k in ("passed", "skipped", "xfailed")}
    count["deselected"] = int(_SUITE_START.get("deselected", 0))
    seconds = time.monotonic() - _SUITE_START["time"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else -1.0
    record = dict(**count, seconds=round(seconds, 1), torch=torch.__version__, marks=marks,
                  machine=f"a {len(os.sched_getaffinity(0))}-core machine (load {_SUITE_START['load']:.1f} at the "
                          f"start, {load:.1f} at the end)",
                  date=datetime.date.today().isoformat(), command="make test-record")
    Path(path).write_text(json.dumps(record, indent=1) + "\n")
    reporter.write_line(f"--record-suite: wrote {path}")
