"""The drag step's device discipline, checked without a GPU.

CI has no GPU, so the step runs here on PyTorch's `meta` device (shapes without data; autograd and
the optimiser work on it) under a dispatch mode that sees every operation. On a GPU the same code
would make the same calls, so this catches what breaks or slows CUDA:
- a tensor made on the CPU and mixed with the generator's tensors (`torch.arange` without
  `device=`, an index or weight built on the host): on CUDA an error or a hidden copy;
- a read back to the host inside the step (`.item()`, `.tolist()`, `float(t)`, `bool(t)`): on
  CUDA a synchronisation; the step may read back once, through `DragSession._to_host`;
- work that grows with the number of handles (a Python loop per handle): the batched step issues
  the same operations for 2 handles as for 17.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from draggan.networks import Generator
from draggan.session import DragSession
from draggan.settings import DragConfig


class DeviceWatch(TorchDispatchMode):
    """Records operations that mix devices, reads of device values, and how many operations ran."""

    def __init__(self):
        super().__init__()
        self.mixed: list[str] = []
        self.reads: list[str] = []
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = set()

        def visit(value):
            if isinstance(value, torch.Tensor):
                if not (value.device.type == "cpu" and value.dim() == 0):  # CPU scalars are allowed anywhere
                    devices.add(value.device.type)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    visit(v)

        for a in (*args, *kwargs.values()):
            visit(a)
        self.ops += 1
        if len(devices) > 1:
            self.mixed.append(f"{func} on {sorted(devices)}")
        if func is torch.ops.aten._local_scalar_dense.default and devices - {"cpu"}:
            self.reads.append(str(func))
        if func is torch.ops.aten._to_copy.default and "meta" in devices and kwargs.get("device") == torch.device("cpu"):
            self.reads.append(f"{func} to the CPU")
        return func(*args, **kwargs)


def _meta_generator() -> Generator:
    with torch.device("meta"):
        return Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=64, img_channels=3,
                         mapping_kwargs=dict(num_layers=2),
                         synthesis_kwargs=dict(channel_base=256, channel_max=16)).eval().requires_grad_(False)


def _run_steps(n_handles: int, steps: int = 3, **config) -> tuple[DeviceWatch, list[int]]:
    """Run `steps` steps on the meta device; returns the watch and the operation count of each step."""
    G = _meta_generator()
    ws = torch.zeros(1, G.num_ws, G.w_dim)  # validated on the host, then moved to G's device
    rng = np.random.default_rng(n_handles)
    handles = rng.uniform(8, 56, (n_handles, 2)).round().tolist()
    targets = rng.uniform(8, 56, (n_handles, 2)).round().tolist()
    mask = np.zeros((64, 64), bool) if config.pop("masked", False) else None
    if mask is not None:
        mask[10:50, 10:50] = True
    session = DragSession(G, ws, handles, targets, mask=mask, config=DragConfig(feature_block=3, **config))
    syncs = []

    def to_host(packet: torch.Tensor) -> list[float]:  # what a device would send back: not done, finite
        syncs.append(tuple(packet.shape))
        hrc = [v for x, y in handles for v in (y, x)]
        return [0.0, 0.5, 1.0] + [5.0] * n_handles + hrc

    session._to_host = to_host
    watch, per_step = DeviceWatch(), []
    with watch:
        for _ in range(steps):
            before = watch.ops
            session.step()
            per_step.append(watch.ops - before)
    assert len(syncs) == steps, f"the step read values back {len(syncs) / steps:g} times instead of once"
    return watch, per_step


@pytest.mark.parametrize("config", [dict(), dict(tracking_distance="l2", official_grid=True, official_stop_rule=True),
                                    dict(masked=True),
                                    dict(masked=True, radius_unit="cells", r1=0.75, r2=3.0, handle_stop="each",
                                         handle_patience=30, mask_loss="l2", mask_margin=1.0)],
                         ids=["paper", "official", "mask", "recommended"])
def test_the_step_stays_on_the_device_and_reads_back_once(config):
    watch, _ = _run_steps(3, **config)
    assert not watch.mixed, f"operations mixing devices in the drag step: {watch.mixed[:5]}"
    assert not watch.reads, f"reads of device values inside the drag step: {watch.reads[:5]}"


@pytest.mark.parametrize("taps", [0, 10**9], ids=["taps", "full map"])
def test_the_step_is_batched_over_handles(taps, monkeypatch):
    import draggan.features

    # draggan.features picks a route by the number of positions (many handles: the whole map resized once);
    # within each route, the count of operations is the same for any number of handles.
    monkeypatch.setattr(draggan.features, "RESIZE_TAPS", taps)
    _, few = _run_steps(2)
    _, many = _run_steps(17)
    # Steps after the first track the handles; their operation counts must not grow with N.
    assert many[1:] == few[1:], f"operations per step: {few} with 2 handles, {many} with 17"
