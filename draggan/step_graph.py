"""A capture-safe drag step replayed as one CUDA graph, whatever the method.

On a GPU a drag step is a thousand small kernels, and launching them one by one from Python costs more than
running them. A step that is capture-safe (after the first step: the same operations every step, reading and
writing only tensors that live across steps, updated in place, with no read back to the host) is captured once
with `torch.cuda.graph` and replayed: the same kernels, launched at once. `CapturedStep` does that for any step
function; the session (`draggan.session.DragSession`) uses it for every method whose class says `capture_safe`.

Before capturing, PyTorch asks for warm-up runs on a side stream; they would advance the method's state, so the
state is saved before them and put back after (and after the capture, which on CUDA records without running).
The graph's engine is a parameter, so that a test can replay the recorded operations on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)


class CudaGraphEngine:
    """Capture and replay with `torch.cuda.CUDAGraph` on `device`."""

    def __init__(self, device: torch.device):
        self.device = device

    @contextlib.contextmanager
    def warm_up(self):
        """The warm-up runs go on a side stream (as PyTorch asks before a capture)."""
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            yield
        torch.cuda.current_stream(self.device).wait_stream(side)

    def capture(self, fn: Callable[[], Any]) -> tuple[Any, Any]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = fn()
        return graph, outputs

    def replay(self, graph: Any) -> None:
        graph.replay()


class CapturedStep:
    """`step()` (forward and backward of a capture-safe step, returning its output tensors) captured once, then
    replayed. `save()` / `restore(saved)` keep and put back the state a run of the step changes; `zero_grad()` lets
    the captured backward own the gradients. A step that cannot be captured runs eagerly from then on, with a
    warning (`failed` is then True)."""

    def __init__(self, step: Callable[[], Any], *, save: Callable[[], Any], restore: Callable[[Any], None],
                 zero_grad: Callable[[], None], engine: Any, warm_ups: int = 2):
        self.step, self.save, self.restore, self.zero_grad = step, save, restore, zero_grad
        self.engine = engine  # CudaGraphEngine (a test passes one that replays on the CPU)
        self.warm_ups = warm_ups
        self.graph: Any = None
        self.outputs: Any = None
        self.failed = False

    def __call__(self) -> Any:
        if self.failed:
            self.zero_grad()
            return self.step()
        if self.graph is None:
            saved = self.save()
            try:
                with self.engine.warm_up():
                    for _ in range(self.warm_ups):
                        self.zero_grad()
                        self.step()
                self.restore(saved)
                self.zero_grad()  # the capture's backward then owns the gradients
                self.graph, self.outputs = self.engine.capture(self.step)
                self.restore(saved)  # a capture that ran (not CUDA's) must not count as this step
            except RuntimeError as e:  # an operation that cannot be captured: the same step, launched one by one
                log.warning("drag step: CUDA graph capture failed (%s); running the step without it", e)
                self.failed, self.graph, self.outputs = True, None, None
                self.restore(saved)
                self.zero_grad()
                return self.step()
        self.engine.replay(self.graph)
        return self.outputs
