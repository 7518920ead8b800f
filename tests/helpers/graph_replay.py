"""A CUDA graph, emulated on the CPU: record the operations a step runs, then replay only them.

A captured CUDA graph replays the kernels it recorded, reading and writing the same memory; the Python code of the
step does not run again. `ReplayEngine` does the same with PyTorch's dispatcher: `capture(fn)` runs `fn` under a
dispatch mode that records every operation with its tensor arguments (by identity), and `replay` runs the recorded
operations again on those tensors, writing each result into the tensor the capture produced. A step that keeps
state in Python attributes, changes its operations from step to step, or makes new tensors that later steps read,
replays differently from the same step run eagerly; a capture-safe step replays exactly.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple[Any, Any, Any, Any]] = []
        self.host_reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.host_reads.append(str(func))
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


def _is_view(func) -> bool:
    returns = func._schema.returns
    return any(r.alias_info is not None for r in returns)


class ReplayEngine:
    """The `engine` of `draggan.step_graph.CapturedStep`, on the CPU: capture records, replay re-runs the record."""

    def __init__(self):
        self.captures = 0
        self.replays = 0
        self.host_reads: list[str] = []

    @contextlib.contextmanager
    def warm_up(self):
        yield

    def capture(self, fn):
        recorder = _Recorder()
        with recorder:
            outputs = fn()
        self.captures += 1
        self.host_reads += recorder.host_reads
        return recorder.ops, outputs

    def replay(self, ops) -> None:
        self.replays += 1
        with torch.no_grad():
            self._run(ops)

    @staticmethod
    def _run(ops) -> None:
        for func, args, kwargs, recorded in ops:
            result = func(*args, **kwargs)
            if _is_view(func):
                continue  # a view (or an in-place op, which returns its input) aliases what it was made from
            new, _ = tree_flatten(result)
            old, _ = tree_flatten(recorded)
            for o, n in zip(old, new):
                if isinstance(o, torch.Tensor) and o is not n:
                    o.copy_(n)
