"""Speed of the drag step, measured against references in the same run.

For one generator of the official widths (random weights: speed only) at each resolution, the
seconds per step of:
- `editor`: `DragSession.step` of DragGAN (sparse features, batched handles, one host read per step), and
  `method_<name>` the same for each other method asked for (FreeDrag, StableDrag: their captured step on CUDA);
- `full_res`: `draggan.apps.reference.FullResolutionDrag`, the official recipe re-written here (whole
  synthesis, feature map resized to the image size, per-handle Python loops);
- `floor`: forward and backward of the synthesis blocks up to the feature block alone, the work any
  drag step must do, in the same precision;
- `official` (optional): the official DragGAN step itself (`Renderer._render_drag_impl` of a checkout
  of github.com/XingangPan/DragGAN that the user points to; nothing of it is copied here), on the
  same weights, with its reference (non-compiled) ops.
The printed ratios (editor / floor, full_res / editor, official / editor) compare numbers of one
process on one machine, which is what survives a noisy machine.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from draggan.apps.reference import FullResolutionDrag
from draggan.networks import Generator
from draggan.progress import phase
from draggan.session import DragSession
from draggan.settings import DragConfig

# Official StyleGAN2 widths per resolution (channel_base as in the official configs).
CHANNEL_BASE = {256: 16384, 512: 32768, 1024: 32768}


def official_sized_generator(resolution: int, seed: int = 0, *, num_fp16_res: int = 4) -> Generator:
    """A randomly initialised generator with the official widths at `resolution` (speed only).

    `num_fp16_res=4` as in the official FFHQ/AFHQ pickles: float16 on the top four resolutions on CUDA."""
    torch.manual_seed(seed)
    return Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                     mapping_kwargs=dict(num_layers=8),
                     synthesis_kwargs=dict(channel_base=CHANNEL_BASE.get(resolution, 32768), channel_max=512,
                                           conv_clamp=256, num_fp16_res=num_fp16_res)).eval().requires_grad_(False)


def drag_points(resolution: int, n: int, seed: int = 0) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """`n` handles and targets 20-40 px (at 512) apart, away from the border; two fixed ones for n = 2."""
    s = resolution / 512
    if n == 2:
        return [(200 * s, 250 * s), (300 * s, 180 * s)], [(230 * s, 280 * s), (260 * s, 180 * s)]
    rng = np.random.default_rng(seed)
    handles = rng.uniform(64, 448, (n, 2)) * s
    angle = rng.uniform(0, 2 * np.pi, n)
    targets = np.clip(handles + np.stack([np.cos(angle), np.sin(angle)], 1) * rng.uniform(20, 40, (n, 1)) * s,
                      0, resolution - 1)
    return [tuple(p) for p in handles.round().tolist()], [tuple(p) for p in targets.round().tolist()]


def seconds_per_call(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def _interleaved(steps_of: dict[str, Callable[[], object]], *, steps: int, warmup: int, rounds: int,
                 device: torch.device) -> dict[str, float]:
    """Seconds per call of each: `rounds` rounds in which each runs `steps` calls in turn; the median
    round of each (so that a machine busy for a while slows all of them, not one)."""
    for fn in steps_of.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in steps_of}
    for _ in range(rounds):
        for name, fn in steps_of.items():
            samples[name].append(seconds_per_call(fn, steps, 0, device))
    return {name: statistics.median(v) for name, v in samples.items()}


def floor_step(G: Generator, ws: torch.Tensor, config: DragConfig, *, graph: bool = False) -> Callable[[], None]:
    """Forward and backward of the blocks up to the feature block, gradients to the optimised rows only.

    With `graph` (CUDA), the same work captured once and replayed as a CUDA graph: the floor of
    the arithmetic, without the cost of launching its kernels one by one."""
    free = ws[:, :config.optimize_ws].clone().requires_grad_(True)
    rest = ws[:, config.optimize_ws:]

    def step() -> None:
        feat = G.synthesis.features(torch.cat([free, rest], 1), up_to=config.feature_block,
                                    force_fp32=config.force_fp32)[-1]
        feat.float().abs().mean().backward()

    if not graph:
        return step
    side = torch.cuda.Stream(ws.device)
    side.wait_stream(torch.cuda.current_stream(ws.device))
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream(ws.device).wait_stream(side)
    free.grad = None
    captured = torch.cuda.CUDAGraph()
    with torch.cuda.graph(captured):
        step()
    return captured.replay


class OfficialDragStep:
    """The official DragGAN drag step on the weights of `G`, from a checkout at `repo`.

    The official code is imported from the user's checkout at run time, never copied into this
    project. `reference_ops` forces its plain-PyTorch ops (its CUDA extensions do not build on recent
    PyTorch/CUDA); its precision policy is its own (float16 on the top resolutions on CUDA).
    """

    def __init__(self, repo: str | Path, G: Generator, ws: torch.Tensor, handles, targets, *, lr: float = 1e-3,
                 feature_idx: int = 5, r1: float = 3, r2: float = 12, reference_ops: bool = True):
        repo = Path(repo).resolve()
        if not (repo / "viz" / "renderer.py").is_file():
            raise FileNotFoundError(f"{repo} is not a checkout of github.com/XingangPan/DragGAN (no viz/renderer.py)")
        if str(repo) not in sys.path:
            sys.path.insert(0, str(repo))
        import dnnlib
        from torch_utils.ops import bias_act, upfirdn2d
        from training.networks_stylegan2 import Generator as OfficialGenerator
        from viz.renderer import Renderer

        if reference_ops:
            bias_act._init = lambda: False
            upfirdn2d._init = lambda: False
        kwargs = {k: v for k, v in G.init_kwargs.items() if k != "square"}
        device = ws.device
        official = OfficialGenerator(**kwargs).eval().requires_grad_(False).to(device)
        official.load_state_dict(G.state_dict())
        renderer = Renderer(disable_timing=True)
        renderer._device, renderer.G = device, official
        renderer.w0 = ws.detach().clone()
        renderer.w = ws.detach().clone().requires_grad_(True)
        renderer.w_optim = torch.optim.Adam([renderer.w], lr=lr)
        renderer.feat_refs, renderer.points0_pt = None, None
        self._renderer, self._res = renderer, dnnlib.EasyDict
        self.points = [[round(y), round(x)] for x, y in handles]  # (row, col), updated in place by the official code
        self.targets = [[round(y), round(x)] for x, y in targets]
        self._kwargs = dict(feature_idx=feature_idx, r1=r1, r2=r2, noise_mode="const", is_drag=True, mask=None)

    def step(self) -> bool:
        res = self._res()
        self._renderer._render_drag_impl(res, points=self.points, targets=self.targets, **self._kwargs)
        if "error" in res:
            raise RuntimeError(f"the official step failed: {res.error}")
        return bool(res.stop)


def _endless(session: DragSession) -> Callable[[], object]:
    """`session.step`, going back to the state after its first step whenever the drag has finished."""

    def step():
        if session.done:
            session.rollback(0)
        return session.step()

    return step


def bench_resolution(resolution: int, device: torch.device, *, steps: int = 3, warmup: int = 1, rounds: int = 1,
                     handles: int = 2, config: DragConfig | None = None, official_repo: str | None = None,
                     full_res: bool = True, make_generator: Callable[[int], Generator] = official_sized_generator,
                     methods: tuple[str, ...] = ()) -> dict:
    """Seconds per step of the editor, the references and the floor, and whether editor and full_res agree."""
    G = make_generator(resolution).to(device)
    cfg, _ = (config or DragConfig()).adapted_to(G)  # e.g. block 3 below 128 px, as the editor does (and says)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)).to(device), None,
                       truncation_psi=0.7)
    h, t = drag_points(resolution, handles)
    fast = DragSession(G, ws, h, t, config=dataclasses.replace(cfg, method="draggan"))
    steps_of = {"editor": fast.step, "floor": floor_step(G, ws, cfg)}
    for method in methods:  # the other methods' steps, with the same settings
        if method != "draggan":
            steps_of[f"method_{method}"] = _endless(DragSession(G, ws, h, t, config=dataclasses.replace(cfg, method=method)))
    if device.type == "cuda":  # the step launched kernel by kernel, and the floor as one graph
        eager = DragSession(G, ws, h, t, config=dataclasses.replace(cfg, cuda_graph=False))
        steps_of.update(editor_eager=eager.step, floor_graph=floor_step(G, ws, cfg, graph=True))
    if full_res:
        full = FullResolutionDrag(G, ws, h, t, cfg)
        steps_of["full_res"] = full.step
    if official_repo:
        steps_of["official"] = OfficialDragStep(official_repo, G, ws, h, t, lr=cfg.lr).step
    seconds = _interleaved(steps_of, steps=steps, warmup=warmup, rounds=rounds, device=device)
    row = {"resolution": resolution, "device": str(device), "handles": handles,
           "precision": "fp32" if cfg.force_fp32 or device.type != "cuda" else "official fp16 policy",
           **{f"{name}_s": s for name, s in seconds.items()}}
    floor = row["floor_graph_s"] if "floor_graph_s" in row else row["floor_s"]
    row["editor_over_floor"] = row["editor_s"] / row["floor_s"]
    if "floor_graph_s" in row:
        row["editor_over_floor_graph"] = row["editor_s"] / row["floor_graph_s"]
    for name in [k for k in seconds if k.startswith("method_")]:
        row[f"{name}_over_floor"] = row[f"{name}_s"] / floor  # against the graphed floor on CUDA
    if full_res:
        row["full_res_over_editor"] = row["full_res_s"] / row["editor_s"]
        row["same_tracked_points"] = fast.handles == [tuple(p) for p in full.handles.flip(-1).tolist()]
        row["max_ws_difference"] = float((fast.ws - full.ws).detach().abs().max())
    if official_repo:
        row["official_over_editor"] = row["official_s"] / row["editor_s"]
    return row


def format_row(row: dict) -> str:
    ms = lambda key: f"{row[key] * 1000:7.1f}" if key in row else f"{'-':>7}"  # noqa: E731
    ratio = lambda key: f"x{row[key]:.2f}" if key in row else "-"  # noqa: E731
    return (f"{row['device']:>6} {row['resolution']:>5} px {row['handles']:>3} handles {row['precision']:>20}  ms/step: "
            f"editor {ms('editor_s')} (eager {ms('editor_eager_s')}) floor {ms('floor_s')} (graph {ms('floor_graph_s')}) "
            f"full-res {ms('full_res_s')} official {ms('official_s')}  editor/floor {ratio('editor_over_floor')} "
            f"(/graph floor {ratio('editor_over_floor_graph')})  full-res/editor {ratio('full_res_over_editor')}  "
            f"official/editor {ratio('official_over_editor')}  same points: {row.get('same_tracked_points', '-')}"
            + "".join(f"  {k[7:-2]} {ms(k)} ({ratio(k[:-2] + '_over_floor')} floor)" for k in row
                      if k.startswith("method_") and k.endswith("_s")))


def bench_drag(resolutions, devices, *, steps: int = 3, warmup: int = 1, rounds: int = 1, handles=(2,),
               official_repo: str | None = None, fp32: bool = True, fp16: bool = True,
               make_generator: Callable[[int], Generator] = official_sized_generator,
               methods: tuple[str, ...] = (), progress: bool = True) -> list[dict]:
    """Every resolution, handle count and precision on every device present; prints a line per row (and, with
    `progress`, on stderr what is being timed, every few seconds while it lasts)."""
    rows = []
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(f"{name}: not present on this machine, skipped")
            continue
        precisions = [True] if device.type != "cuda" else [p for p, on in ((True, fp32), (False, fp16)) if on]
        for force_fp32 in precisions:
            for res in resolutions:
                for n in handles:
                    cfg = DragConfig(force_fp32=force_fp32)
                    what = f"bench_drag: {name} {int(res)} px, {int(n)} handles, {'fp32' if force_fp32 else 'fp16'}"
                    with phase(what, enabled=progress):
                        row = bench_resolution(int(res), device, steps=steps, warmup=warmup, rounds=rounds,
                                               handles=int(n), config=cfg,
                                               official_repo=official_repo if n == handles[0] else None,
                                               full_res=n == handles[0], make_generator=make_generator,
                                               methods=tuple(methods))
                    rows.append(row)
                    print(format_row(row), flush=True)
    return rows
