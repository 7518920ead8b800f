"""Precision settings on CUDA that decide whether a drag trajectory repeats.

PyTorch's defaults on NVIDIA GPUs favour speed: cuDNN convolutions use TF32 (a 10-bit mantissa for
the products), cuDNN may pick a different algorithm from run to run, and scatter-adds (the backward
of the sparse feature sampling) add in whatever order the threads arrive. Each is a rounding
difference, but a drag is a sequence of nearest-neighbour decisions, so a tie broken differently
at one step changes every later one. Inside `repeatable()`, none of these applies: a trajectory
repeats run to run, and stays within float32 rounding of the CPU's.

The generator's own precision policy is separate: official checkpoints name `num_fp16_res`, the
blocks that compute in float16 on CUDA; `DragConfig(force_fp32=True)` turns that off.
"""

from __future__ import annotations

import contextlib
import os

import torch


@contextlib.contextmanager
def repeatable():
    """No TF32, deterministic cuDNN algorithms without autotuning, deterministic PyTorch kernels
    (warning, not failing, where an operation has none). Restores the previous settings on exit."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read when it starts)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.benchmark) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])
