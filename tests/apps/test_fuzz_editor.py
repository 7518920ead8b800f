"""Fuzzing the editor's request handlers through HTTP on 127.0.0.1 (hypothesis; `tests/helpers/fuzz_targets.py`):
any JSON or bytes to points, undo and generate, any query numbers, any multipart body to load. Every answer
is a 200 or a 4xx with a one-line message, never a 500; the server keeps answering; memory grows by less than
200 MB per request, in a child under an address-space cap. `pytest -m fuzz` runs twenty times as many."""

from __future__ import annotations

import random

import pytest

from tests.helpers.fuzz_targets import GROWTH_MB, run_fuzz

EXAMPLES = 40


def test_fuzzed_requests_are_answered_200_or_4xx():
    summary = run_fuzz("editor", EXAMPLES)
    statuses = summary["outcomes"]
    assert statuses.get("HTTP 200") and any(k.startswith("HTTP 4") for k in statuses), statuses
    assert summary["peak_growth_mb"] < GROWTH_MB


@pytest.mark.fuzz
def test_fuzzed_requests_longer_run():
    summary = run_fuzz("editor", 20 * EXAMPLES, seed_value=random.randrange(1, 2**31), timeout=3600)
    assert summary["peak_growth_mb"] < GROWTH_MB
