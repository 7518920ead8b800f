"""Speed of the drag editor against a straightforward full-resolution step, measured in one run."""

from __future__ import annotations

import time

import torch

from draggan.drag import DragConfig, DragSession
from draggan.networks import Generator
from draggan.reference import FullResolutionDrag

# Official StyleGAN2 widths per resolution (channel_base as in the official configs).
CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


def official_sized_generator(resolution: int, seed: int = 0) -> Generator:
    """A randomly initialised generator with the official widths at `resolution` (speed only)."""
    torch.manual_seed(seed)
    return Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                     mapping_kwargs=dict(num_layers=8),
                     synthesis_kwargs=dict(channel_base=CHANNEL_BASE.get(resolution, 32768), channel_max=512,
                                           conv_clamp=256)).eval().requires_grad_(False)


def _time_steps(step, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench_resolution(resolution: int, device: torch.device, *, steps: int = 3, warmup: int = 1,
                     config: DragConfig | None = None) -> dict:
    """Seconds per step of the editor and of the full-resolution step, and whether they agree."""
    G = official_sized_generator(resolution).to(device)
    cfg = config or DragConfig()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 512, device=device), None, truncation_psi=0.7)
    s = resolution / 512
    handles = [(200 * s, 250 * s), (300 * s, 180 * s)]
    targets = [(230 * s, 280 * s), (260 * s, 180 * s)]
    fast = DragSession(G, ws, handles, targets, config=cfg)
    full = FullResolutionDrag(G, ws, handles, targets, cfg)
    fast_s = _time_steps(fast.step, steps, warmup, device)
    full_s = _time_steps(full.step, steps, warmup, device)
    same = fast.handles == [tuple(p) for p in full.handles.flip(-1).tolist()]
    ws_diff = float((fast.ws - full.ws).detach().abs().max())
    return {"resolution": resolution, "device": str(device), "editor_s_per_step": fast_s,
            "full_res_s_per_step": full_s, "editor_steps_per_s": 1 / fast_s, "full_res_steps_per_s": 1 / full_s,
            "speedup": full_s / fast_s, "same_tracked_points": same, "max_ws_difference": ws_diff}


def bench_drag(resolutions, devices, *, steps: int = 3, warmup: int = 1) -> list[dict]:
    """Every resolution on every device present; prints a table, returns its rows."""
    rows = []
    for name in devices:
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: not present on this machine, skipped")
            continue
        for res in resolutions:
            row = bench_resolution(int(res), torch.device(name), steps=steps, warmup=warmup)
            rows.append(row)
            print(f"{row['device']:>5} {row['resolution']:>5} px  editor {row['editor_steps_per_s']:6.2f} step/s  "
                  f"full-res {row['full_res_steps_per_s']:6.2f} step/s  speed-up x{row['speedup']:.2f}  "
                  f"same points: {row['same_tracked_points']}  max |dws| {row['max_ws_difference']:.1e}", flush=True)
    return rows
