"""draggan/progress.py: long work without a bar says what it does, every few seconds, on stderr."""

from __future__ import annotations

import io
import time

import pytest

from draggan.progress import phase


def test_a_phase_says_what_starts_then_ticks_then_how_long_it_took():
    out = io.StringIO()
    with phase("fitting", every=0.05, stream=out):
        deadline = time.monotonic() + 10
        while out.getvalue().count("fitting: ") < 2 and time.monotonic() < deadline:  # two ticks, however slow
            time.sleep(0.01)
    lines = out.getvalue().splitlines()
    assert lines[0] == "fitting ..."
    assert lines[1].startswith("fitting: ") and lines[1].endswith(" s")
    assert lines[-1].startswith("fitting: done in ")


def test_a_failed_phase_does_not_say_done_and_a_disabled_one_says_nothing():
    out = io.StringIO()
    with pytest.raises(ValueError), phase("loading", stream=out):
        raise ValueError("bad file")
    assert out.getvalue() == "loading ...\n"
    quiet = io.StringIO()
    with phase("loading", enabled=False, stream=quiet):
        pass
    assert quiet.getvalue() == ""
