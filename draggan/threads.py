"""How many CPU threads torch uses: the `threads=` setting of every command (`auto` by default).

On a machine that other jobs share, torch's default (a thread per core, each spinning while it waits for the
others at the end of every parallel operation) loses badly: a thread that the kernel has preempted holds up
the rest, which burn their time slices spinning. On 2 cores beside other jobs the embedded model's drag step took
7x the time of one thread, and `scripts/drag.py` 3x (docs/benchmarks.md, "Threads on a busy machine"). Two rules
make the default safe there and keep the cores' speed where they are free:

- `quiet_openmp()`: OpenMP's threads sleep while they wait (`OMP_WAIT_POLICY=PASSIVE`) instead of spinning.
  OpenMP reads it once, when torch is loaded, so `draggan/__init__.py` calls it before it imports torch; a
  value the user set is kept.
- `thread_count('auto', work_macs=...)`: the cores this process may use (`os.sched_getaffinity`: a SLURM or
  taskset allocation, not the machine's count; shared among torchrun's processes on one machine), and one
  thread for work too small to share: below `SHARE_MIN_MACS` multiply-adds per unit of work (one synthesis
  pass of the drag's generator, say), a second thread buys at most 1.2x on free cores and costs 10-20 % where
  the cores are busy (measured: docs/benchmarks.md).

`threads=N` asks for N threads, and `threads=null` leaves torch's own choice alone. A number the user chose
holds for the whole process: `auto` inside the library (`DragSession.run`) then keeps it, and so does an
`OMP_NUM_THREADS` set in the environment (a cap for shared work).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

log = logging.getLogger(__name__)

# One synthesis pass of the toy generators (0.2-0.3 G multiply-adds) gains 1.1-1.2x from a second free core and
# loses 10-20 % on a busy one; an official 64-px generator (13.6 G) gains 1.8x: share work from 4 G up.
SHARE_MIN_MACS = 4e9

_chosen: int | None = None  # the count a command's user asked for (use_threads with a number): auto keeps it


def quiet_openmp(environ: dict[str, str] | None = None) -> bool:
    """Make OpenMP's waiting threads sleep instead of spin (unless the user chose a wait policy); True when it
    takes effect, that is when torch is not loaded yet (OpenMP reads its settings when it is loaded)."""
    env = os.environ if environ is None else environ
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return "torch" not in sys.modules


def available_cores(environ: dict[str, str] | None = None) -> int:
    """The cores this process may run on, shared with the other processes that torchrun started on this machine."""
    env = os.environ if environ is None else environ
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(env.get("LOCAL_WORLD_SIZE", "1"))))


def thread_count(setting: int | str | None = "auto", *, work_macs: float | None = None,
                 environ: dict[str, str] | None = None) -> int | None:
    """The torch threads `setting` means: `auto` (see the module's docstring; `work_macs`, the multiply-adds of
    one unit of the work to come, None = large), a positive number, or None (torch's own choice: returns None)."""
    if setting is None:
        return None
    if isinstance(setting, str) and setting.strip().lower() == "auto":
        if _chosen is not None:
            return _chosen
        if work_macs is not None and work_macs < SHARE_MIN_MACS:
            return 1
        env = os.environ if environ is None else environ
        cap = env.get("OMP_NUM_THREADS", "").strip()
        return min(available_cores(env), int(cap)) if cap.isdigit() and int(cap) > 0 else available_cores(env)
    try:
        count = int(setting)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or str(count) != str(setting).strip():
        raise ValueError(f"threads must be auto, a whole number >= 1 or null (torch's default), got {setting!r}")
    return count


def use_threads(setting: int | str | None = "auto", *, work_macs: float | None = None) -> int:
    """Set torch's thread count as `thread_count` says (None: leave it), for the rest of the process (a command's
    `threads=`; a number is remembered, see `_chosen`); returns the count in use."""
    import torch

    global _chosen
    count = thread_count(setting, work_macs=work_macs)
    if setting is not None and not (isinstance(setting, str) and setting.strip().lower() == "auto"):
        _chosen = count
    if count is not None and count != torch.get_num_threads():
        torch.set_num_threads(count)
    return torch.get_num_threads()


@contextlib.contextmanager
def threads_for(setting: int | str | None = "auto", *, work_macs: float | None = None) -> Iterator[int]:
    """Torch's thread count as `thread_count` says for the duration of a `with` block (a library call), then as it
    was."""
    import torch

    before = torch.get_num_threads()
    count = thread_count(setting, work_macs=work_macs)
    try:
        if count is not None and count != before:
            torch.set_num_threads(count)
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def synthesis_macs(G, *, batch: int = 1) -> float:
    """Multiply-adds of one synthesis pass of `G` (its modulated convolutions; `batch` images): the size of a drag
    step or an inversion step, as `thread_count` weighs it."""
    total = 0
    for layer in G.synthesis.modules():
        weight = getattr(layer, "weight", None)
        if weight is not None and weight.dim() == 4 and hasattr(layer, "resolution"):
            total += layer.resolution * getattr(layer, "width", layer.resolution) * weight.numel()
    return float(total * batch)
