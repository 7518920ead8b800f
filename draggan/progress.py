"""Progress of long work that has no natural bar: `with phase("detecting 256 faces"):` says what starts, then a
line every few seconds while it lasts, then how long it took (on stderr, so that a command's own output on stdout
stays machine-readable). Work made of counted steps shows a tqdm bar instead."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def phase(what: str, *,
          enabled: bool = True,  # False: say nothing (progress=false)
          every: float = 5.0,  # seconds between the lines while it lasts
          stream: TextIO | None = None) -> Iterator[None]:  # None = sys.stderr
    if not enabled:
        yield
        return
    out = stream if stream is not None else sys.stderr
    start = time.perf_counter()
    done = threading.Event()

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    def tick() -> None:
        while not done.wait(every):
            say(f"{what}: {time.perf_counter() - start:.0f} s")

    say(f"{what} ...")
    ticker = threading.Thread(target=tick, name="progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
    say(f"{what}: done in {time.perf_counter() - start:.1f} s")
