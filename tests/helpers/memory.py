"""Running code in a fresh Python under an address-space cap (`RLIMIT_AS`), to prove memory bounds.

The child imports what it needs, then caps its address space at its size after the imports plus a
headroom, and runs each case with `attempt(label, fn)`: what it raised and how far its resident
memory rose above the level before the case (the kernel's high-water mark, reset per case). A case
that tries to allocate gigabytes either fails under the cap (and raises whatever the code raises
then) or shows the growth; a case that validates sizes first raises its own error and grows little.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_CHILD = '''
import json, resource, sys
{imports}

def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass

_cap = _status("VmSize") + {headroom}
resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))
_results = []

def attempt(label, fn):
    _reset_peak()
    before = _status("VmRSS")
    try:
        fn()
        error, message = "ok", ""
    except BaseException as e:  # noqa: BLE001 - reported to the test
        error, message = type(e).__name__, str(e)
    _results.append({{"label": label, "error": error, "message": message[:400],
                      "growth_mb": (_status("VmHWM") - before) / 2**20}})

{body}
print("RESULTS" + json.dumps(_results))
'''


def run_capped(body: str, *, imports: str, headroom_mb: int = 1024, timeout: float = 240,
               env: dict | None = None) -> dict[str, dict]:
    """Run `body` (which calls `attempt(label, fn)`) after `imports`, capped at headroom_mb above the
    child's size after its imports; returns label -> {"error", "message", "growth_mb"}."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space cap and /proc measurements need Linux")
    code = _CHILD.format(imports=textwrap.dedent(imports), body=textwrap.dedent(body), headroom=headroom_mb << 20)
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1",
                 **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=child_env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS")]
    assert proc.returncode == 0 and lines, f"the capped child failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return {r["label"]: r for r in json.loads(lines[-1][len("RESULTS"):])}
