"""Fuzzing the readers of untrusted files (hypothesis; `tests/helpers/fuzz_targets.py`): network pickles, npz and
zip archives, session.json. Each runs in a child under an address-space cap; every input is read or refused
with the reader's own error in one line, never a disguised MemoryError, and grows memory by less than 200 MB.

The default run has a fixed budget in hypothesis's derandomized order (a few seconds each after the child's
imports); `pytest -m fuzz` runs twenty times as many examples with random seeds."""

from __future__ import annotations

import random

import pytest

from tests.helpers.fuzz_targets import GROWTH_MB, run_fuzz

BUDGET = {"pickle": 60, "npz": 150, "session_json": 40}


@pytest.mark.parametrize("target", sorted(BUDGET))
def test_fuzzed_files_are_read_or_refused_in_one_line(target):
    summary = run_fuzz(target, BUDGET[target])
    refused = sum(n for k, n in summary["outcomes"].items() if k != "read")
    assert refused and summary["outcomes"].get("read", 0), summary  # both sides of the property were exercised
    assert summary["peak_growth_mb"] < GROWTH_MB


@pytest.mark.fuzz
@pytest.mark.parametrize("target", sorted(BUDGET))
def test_fuzzed_files_longer_run(target):
    summary = run_fuzz(target, 20 * BUDGET[target], seed_value=random.randrange(1, 2**31), timeout=3600)
    assert summary["peak_growth_mb"] < GROWTH_MB
