"""`make gpu-check`: every CUDA path of the project in one run, with the CPU's result where the two
must agree, the drag-step benchmark (editor, fwd+bwd floor, full-resolution and official steps) and
a trainer throughput probe, printed as one table.

Each check runs on its own: a failure is reported with the end of its traceback and the others go
on. Comparisons with the CPU run inside `draggan.precision.repeatable()` (no TF32, deterministic
kernels), so a difference is a bug, not rounding policy. On a machine without the device, the
checks run on the CPU against the CPU (`device=cpu quick=true` is what the test suite runs).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from draggan.latents import z_from_seeds
from draggan.loading import load_generator, resolve_device
from draggan.methods import available, get_method
from draggan.precision import repeatable
from draggan.progress import phase
from draggan.session import DragSession
from draggan.settings import DragConfig

TOY = "toy-faces-64"
# its recommended settings (draggan.registry), with DragGAN's step: the CUDA path this check is about
TOY_DRAG = dataclasses.replace(DragConfig.for_generator(TOY), method="draggan")


class Skip(Exception):
    """A check that cannot run here (a missing optional package), with the reason."""


@dataclass
class CheckResult:
    name: str
    status: str  # 'ok', 'FAIL' or 'skipped'
    seconds: float
    detail: str  # one line: what was measured, or why it failed
    metrics: dict = field(default_factory=dict)


@dataclass
class Context:
    device: torch.device
    quick: bool  # small sizes: the CPU test of this module
    tmp: Path
    resolutions: list[int]
    official_repo: str | None
    out: Path | None


def _toy(device) -> torch.nn.Module:
    return load_generator(TOY, device=device)


def _toy_ws(G, seed: int = 0) -> torch.Tensor:
    from draggan.latents import initial_latent

    return initial_latent(G, seed, 0.7)


def _narrow_generator(resolution: int) -> torch.nn.Module:
    """The official layout (z and w of 512) with few channels: the quick mode's stand-in."""
    from draggan.networks import Generator

    torch.manual_seed(0)
    return Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, mapping_kwargs=dict(num_layers=2),
                     synthesis_kwargs=dict(channel_base=1024, channel_max=32)).eval().requires_grad_(False)


def _trajectory(G, ws, handles, targets, config: DragConfig, steps: int) -> tuple[list, torch.Tensor]:
    session = DragSession(G, ws, handles, targets, config=config)
    states = []
    for _ in range(steps):
        if session.done:
            break
        states.append(session.step().handles)
    return states, session.ws.detach().cpu()


def _agreement(a: list, b: list) -> int:
    """How many leading steps two trajectories of handles share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------------------------------------
# The checks: each takes the context and returns (one-line detail, metrics); raising fails it.


def check_generator(ctx: Context):
    with repeatable():
        G_cpu, G_dev = _toy("cpu"), _toy(ctx.device)
        z = z_from_seeds(G_cpu, range(4))
        with torch.no_grad():
            a = G_cpu.synthesis(G_cpu.mapping(z, None, truncation_psi=0.7))
            b = G_dev.synthesis(G_dev.mapping(z.to(ctx.device), None, truncation_psi=0.7)).cpu()
    diff = float((a - b).abs().max())
    metrics = {"toy_max_abs_diff": diff}
    detail = f"{TOY} images, {ctx.device} vs cpu: max |diff| {diff:.1e}"
    if ctx.device.type == "cuda":  # the official precision policy: float16 on the top 4 resolutions
        from draggan.apps.benchmark import official_sized_generator

        G = official_sized_generator(256).to(ctx.device)
        with torch.no_grad():
            ws = G.mapping(torch.randn(2, 512, device=ctx.device), None, truncation_psi=0.7)
            full, half = G.synthesis(ws, force_fp32=True), G.synthesis(ws)
            feats = G.synthesis.features(ws, up_to=5)
        metrics.update(fp16_policy_mean_abs_diff=float((full - half).abs().mean()),
                       block5_dtype=str(feats[-1].dtype))
        detail += (f"; 256-px official widths, fp16 policy vs fp32: mean |diff| "
                   f"{metrics['fp16_policy_mean_abs_diff']:.1e}, block 5 in {feats[-1].dtype}")
    if diff > 1e-3:
        raise AssertionError(detail)
    return detail, metrics


def check_drag(ctx: Context):
    steps = 12 if ctx.quick else 40
    handles, targets = [(32.0, 40.0), (24.0, 28.0)], [(32.0, 45.0), (20.0, 28.0)]
    with repeatable():
        runs = {}
        for dev in ("cpu", ctx.device):
            G = _toy(dev)
            runs[str(dev)] = _trajectory(G, _toy_ws(G), handles, targets, TOY_DRAG, steps)
    (ta, wa), (tb, wb) = runs["cpu"], runs[str(ctx.device)]
    same = _agreement(ta, tb)
    diff = float((wa - wb).abs().max())
    detail = f"{TOY}, 2 handles, {len(ta)} steps: tracked points equal to the CPU's for {same} steps, final max |dws| {diff:.1e}"
    if same < min(5, len(ta)):
        raise AssertionError(detail)
    # Mask, roll-back and resume on the device.
    G = _toy(ctx.device)
    mask = np.zeros((64, 64), bool)
    mask[30:50, 20:44] = True
    s = DragSession(G, _toy_ws(G), handles[:1], targets[:1], mask=mask, config=TOY_DRAG)
    for _ in range(6):
        s.step()
    straight = [s.step().handles for _ in range(2)]
    s.rollback(5)
    again = [s.step().handles for _ in range(2)]
    from draggan.session_io import load_session, save_session

    save_session(s, ctx.tmp / "session")
    resumed = load_session(ctx.tmp / "session", G)
    if again != straight or resumed.handles != s.handles or not torch.equal(resumed.ws, s.ws):
        raise AssertionError(f"roll-back or resume on {ctx.device} changed the trajectory")
    detail += "; mask, roll-back, save/resume ok"
    metrics = {"steps_equal": same, "max_ws_diff": diff}
    if ctx.device.type == "cuda":  # each capture-safe method's captured step against the same step launched eagerly
        for method in [m for m in available() if get_method(m).capture_safe]:
            config = dataclasses.replace(TOY_DRAG, method=method)
            graph = DragSession(G, _toy_ws(G), handles, targets, config=config)
            eager = DragSession(G, _toy_ws(G), handles, targets, config=dataclasses.replace(config, cuda_graph=False))
            pairs = []
            for _ in range(min(steps, 20)):
                if graph.done or eager.done:
                    break
                pairs.append((graph.step().handles, eager.step().handles))
            equal = _agreement([p[0] for p in pairs], [p[1] for p in pairs])
            captured = graph.captured
            detail += (f"; {method}: CUDA graph {'captured' if captured else 'NOT captured'}, equal to eager for "
                       f"{equal} of {len(pairs)} steps")
            metrics.update({f"{method}_graph_captured": captured, f"{method}_graph_steps_equal": equal})
            if not captured or equal < min(3, len(pairs)):
                raise AssertionError(detail)
    return detail, metrics


def check_official_preset(ctx: Context):
    from draggan.apps.benchmark import drag_points, official_sized_generator

    res = 128 if ctx.quick else 256
    cfg = dataclasses.replace(DragConfig.preset("official"), force_fp32=True)
    h, t = drag_points(res, 2)
    with repeatable():
        runs = []
        for dev in ("cpu", ctx.device):
            G = (_narrow_generator(res) if ctx.quick else official_sized_generator(res)).to(dev)
            with torch.no_grad():
                ws = G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)).to(dev), None,
                               truncation_psi=0.7)
            runs.append(_trajectory(G, ws, h, t, cfg, 6 if ctx.quick else 10))
    same = _agreement(runs[0][0], runs[1][0])
    diff = float((runs[0][1] - runs[1][1]).abs().max())
    detail = (f"official preset, {res}-px official widths, fp32: tracked points equal to the CPU's for {same} of "
              f"{len(runs[0][0])} steps, max |dws| {diff:.1e}")
    if same < 3:
        raise AssertionError(detail)
    if ctx.device.type == "cuda":  # the official policy (fp16) runs and moves the handles
        G = official_sized_generator(res).to(ctx.device)
        ws = G.mapping(torch.randn(1, 512, device=ctx.device), None, truncation_psi=0.7)
        fp16 = _trajectory(G, ws, h, t, DragConfig.preset("official"), 6)[0]
        detail += f"; fp16 policy: {len(fp16)} steps, handles {fp16[-1]}"
    return detail, {"steps_equal": same, "max_ws_diff": diff}


def check_full_resolution_reference(ctx: Context):
    from draggan.apps.reference import FullResolutionDrag

    G = _toy(ctx.device)
    ws = _toy_ws(G)
    handles, targets = [(32.0, 40.0), (24.0, 28.0)], [(32.0, 45.0), (20.0, 28.0)]
    with repeatable():
        fast, full = DragSession(G, ws, handles, targets, config=TOY_DRAG), FullResolutionDrag(G, ws, handles, targets, TOY_DRAG)
        same = 0
        for _ in range(8):
            fast.step()
            full.step()
            same += fast.handles == [tuple(p) for p in full.handles.flip(-1).tolist()]
        diff = float((fast.ws - full.ws).detach().abs().max())
    detail = f"editor vs full-resolution step on {ctx.device}: same points in {same} of 8 steps, max |dws| {diff:.1e}"
    if same < 8:
        raise AssertionError(detail)
    return detail, {"steps_equal": same, "max_ws_diff": diff}


def _inversion(ctx: Context, loss: str, lpips_weights: str | None):
    from draggan.apps.toyfaces.renderer import render_seeds
    from inversion.configs import InversionSettings, PTISettings
    from inversion.run import invert_image

    steps = 5 if ctx.quick else 30
    s = InversionSettings(loss=loss, num_steps=steps, w_avg_samples=200, lpips_net="vgg", lpips_weights=lpips_weights,
                          pti=PTISettings(num_steps=steps // 2, lpips_weight=0.0))
    out = {}
    for dev in ("cpu", ctx.device):
        G = _toy(dev)
        target = render_seeds([3], 64)[0].to(dev)
        torch.manual_seed(0)
        inv = invert_image(G, target, s, progress=False)
        out[str(dev)] = float((inv["reconstruction"] - target).square().mean())
    a, b = out["cpu"], out[str(ctx.device)]
    detail = f"{loss} projection + PTI ({steps} + {steps // 2} steps): reconstruction MSE cpu {a:.4f}, {ctx.device} {b:.4f}"
    if not (np.isfinite(a) and np.isfinite(b)) or abs(a - b) > 0.25 * max(a, b) + 1e-3:
        raise AssertionError(detail)
    return detail, {"mse_cpu": a, "mse_device": b}


def check_inversion_mse(ctx: Context):
    return _inversion(ctx, "mse", None)


def check_inversion_lpips(ctx: Context):
    try:
        import lpips  # noqa: F401
        import torchvision
    except ImportError as e:
        raise Skip(f"the lpips package is not installed ({e})") from None
    path = ctx.tmp / "vgg16-random.pth"  # the real loader, with a random backbone (ImageNet weights are not here)
    torch.manual_seed(0)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    detail, metrics = _inversion(ctx, "lpips", str(path))
    return detail + " (random VGG backbone: a path check, not a quality one)", metrics


def check_detector(ctx: Context):
    from draggan.apps.toyfaces.detector import load_detector
    from draggan.apps.toyfaces.renderer import render_seeds

    images, _, truth = render_seeds(range(4 if ctx.quick else 16), 64)
    steps = (5, 5, 5) if ctx.quick else (40, 40, 40)
    with repeatable():
        a = load_detector(refine_steps=steps, device="cpu")(images)
        b = load_detector(refine_steps=steps, device=ctx.device)(images)
    diff = float((a.landmarks - b.landmarks).abs().max())
    err = float((b.landmarks - truth).norm(dim=-1).mean())
    detail = (f"toy-faces detector on {ctx.device}: max |landmark diff| vs cpu {diff:.3f} px, mean error vs truth "
              f"{err:.3f} px, detected {float(b.detected.float().mean()):.0%}")
    if diff > 0.25:
        raise AssertionError(detail)
    return detail, {"max_diff_px": diff, "mean_error_px": err}


def check_evaluation(ctx: Context):
    from omegaconf import OmegaConf

    from draggan.loggers import NullLogger
    from eval.configs import EvaluateConfig
    from eval.run import run_evaluation

    rows = []
    for name, extra in (("landmarks", dict(num_points=[1], fid=False)), ("paired", dict(paired_points=8)),
                        ("tracking", dict(num_points=[1]))):
        cfg = OmegaConf.structured(EvaluateConfig(generator=TOY, device=str(ctx.device), n_pairs=1, examples=0,
                                                  progress=False))
        cfg.benchmark.name = name
        for k, v in extra.items():
            cfg.benchmark[k] = v
        cfg.drag.max_steps = 20 if ctx.quick else 60
        r = run_evaluation(cfg, ctx.tmp / f"eval-{name}", logger=NullLogger())
        if name == "tracking":
            ok = [row["tracker"] for row in r["rows"] if row["available"]]
            off = [row["tracker"] for row in r["rows"] if not row["available"]]
            rows.append(f"tracking: {', '.join(ok)} ran" + (f"; unavailable here: {', '.join(off)}" if off else ""))
        else:
            rows.append(f"{name}: {len(r['rows'])} row(s)")
    return "; ".join(rows), {}


def check_web_editor(ctx: Context):
    from draggan.apps.editor.editor import Editor, GeneratorChoice

    editor = Editor([GeneratorChoice(TOY, TOY, TOY_DRAG)], load=lambda source: load_generator(source, device=ctx.device),
                    out_dir=ctx.tmp / "app", device=ctx.device)
    try:
        tab = editor.open()
        tab.generate(None, 0)
        tab.set_points([(32.0, 40.0)], [(32.0, 45.0)])
        tab.start()
        deadline = time.time() + 120
        while tab.running and time.time() < deadline:
            time.sleep(0.05)
        state = tab.snapshot()
        name, data = tab.save()
    finally:
        editor.shutdown()
    if state["level"] == "error" or not state["step"] or not data:
        raise AssertionError(f"the editor on {ctx.device} failed: {state['message']} (after {state['step']} steps)")
    return (f"a tab on {ctx.device}: drag ran ({state['step']} steps, handle at {state['handles'][0]}), "
            f"session zip of {len(data)} bytes saved"), {}


def check_trainer(ctx: Context):
    from draggan.apps.training.discriminator import Discriminator
    from draggan.apps.training.loop import TrainConfig, train
    from draggan.apps.training.loss import discriminator_loss, r1_penalty

    # A few iterations, then the same continued from a snapshot: the resume must match.
    tiny = dict(resolution=16, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8, batch=4,
                snapshot_kimg=0.008, log_every=1, grid_size=2, r1_interval=2, device=str(ctx.device))
    with repeatable():
        a = train(TrainConfig(kimg=0.032, **tiny), ctx.tmp / "train-a", progress=False)
        train(TrainConfig(kimg=0.016, **tiny), ctx.tmp / "train-b", progress=False)
        b = train(TrainConfig(kimg=0.032, **tiny), ctx.tmp / "train-b", progress=False)
    from draggan.checkpoint import load_generator_file

    A, B = (load_generator_file(r.generator_path).state_dict() for r in (a, b))
    resume_diff = max(float((A[k] - B[k]).abs().max()) for k in A)
    # The R1 step against a plain discriminator step (64 px, batch 64, toy widths).
    res, batch = (32, 8) if ctx.quick else (64, 64)
    D = Discriminator(res, channel_base=2048, channel_max=64).to(ctx.device)
    real = torch.randn(batch, 3, res, res, device=ctx.device)
    fake = torch.randn(batch, 3, res, res, device=ctx.device)

    def d_step(r1: bool) -> None:
        x = real.detach().requires_grad_(r1)
        logits = D(x)
        loss = discriminator_loss(logits, D(fake))
        if r1:
            loss = loss + r1_penalty(logits, x).mean()
        loss.backward()

    from draggan.apps.benchmark import seconds_per_call

    plain = seconds_per_call(lambda: d_step(False), 3 if ctx.quick else 20, 2, ctx.device)
    with_r1 = seconds_per_call(lambda: d_step(True), 3 if ctx.quick else 20, 2, ctx.device)
    metrics = {"resume_max_diff": resume_diff, "d_step_ms": plain * 1e3, "d_step_r1_ms": with_r1 * 1e3,
               "r1_over_plain": with_r1 / plain}
    detail = (f"resume on {ctx.device}: max |diff| {resume_diff:.1e}; D step {plain * 1e3:.1f} ms, with R1 "
              f"{with_r1 * 1e3:.1f} ms (x{with_r1 / plain:.2f})")
    # Throughput of the toy-faces-64 configuration (renders on the device), float32 and bf16 autocast.
    probes = [(8, "none", True), (8, "bf16", True)] if ctx.quick else \
        [(512, "none", False), (512, "none", True), (2048, "none", False), (2048, "none", True), (2048, "bf16", True)]
    for batch, precision, bench in probes:
        iters = 4 if ctx.quick else 40
        cfg = TrainConfig(batch=batch, kimg=batch * iters / 1000, snapshot_kimg=0, log_every=iters // 2, grid_size=2,
                          device=str(ctx.device), resolution=32 if ctx.quick else 64, mixed_precision=precision,
                          cudnn_benchmark=bench)
        r = train(cfg, ctx.tmp / f"probe-{batch}-{precision}-{bench}", resume=False, progress=False)
        metrics[f"img_per_s_{precision}_batch{batch}_bench{int(bench)}"] = r.metrics["img_per_sec"]
    detail += "; toy-faces-64 training: " + ", ".join(
        f"{metrics[f'img_per_s_{p}_batch{b}_bench{int(c)}']:.0f} img/s at batch {b} ({'fp32' if p == 'none' else p}"
        f"{', cudnn.benchmark' if c else ''})" for b, p, c in probes)
    if resume_diff > 1e-4:
        raise AssertionError(detail)
    return detail, metrics


def check_bench_drag(ctx: Context):
    from draggan.apps.benchmark import bench_drag, format_row, official_sized_generator

    if not ctx.resolutions:
        raise Skip("no resolutions to benchmark")
    rows = bench_drag(ctx.resolutions, [str(ctx.device)], steps=2 if ctx.quick else 10, warmup=1 if ctx.quick else 3,
                      handles=(2, 17) if ctx.quick else (2, 68), official_repo=ctx.official_repo,
                      make_generator=_narrow_generator if ctx.quick else official_sized_generator,
                      methods=tuple(m for m in available() if get_method(m).capture_safe and m != "draggan"))
    if ctx.out is not None:
        (ctx.out / "bench_drag.txt").write_text("\n".join(format_row(r) for r in rows) + "\n")
    best = {r["resolution"]: r for r in rows if r["handles"] == 2}  # the last precision of each resolution
    floor = "editor_over_floor_graph" if ctx.device.type == "cuda" else "editor_over_floor"
    detail = f"{best and next(iter(best.values()))['precision']}: " + "; ".join(
        f"{res} px: editor {r['editor_s'] * 1e3:.1f} ms (x{r[floor]:.2f} the {'graphed ' * (floor != 'editor_over_floor')}"
        f"fwd+bwd floor)" for res, r in sorted(best.items()))
    return detail, {"rows": rows}


def check_profile(ctx: Context):
    """Kernels, host synchronisations and GPU time of one editor step at 512 px (fp16 policy)."""
    if ctx.device.type != "cuda":
        raise Skip("the kernel profile needs CUDA")
    from torch.profiler import ProfilerActivity, profile

    from draggan.apps.benchmark import drag_points, official_sized_generator

    G = official_sized_generator(512).to(ctx.device)
    ws = G.mapping(torch.randn(1, 512, device=ctx.device), None, truncation_psi=0.7)
    s = DragSession(G, ws, *drag_points(512, 2), config=DragConfig())
    for _ in range(3):
        s.step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            s.step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    count = lambda *names: sum(e.count for e in events if e.key in names)  # noqa: E731
    launches = count("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")
    syncs = count("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
    to_host = sum(e.count for e in events if e.key.startswith("Memcpy DtoH"))
    if ctx.out is not None:
        (ctx.out / "profile_512.txt").write_text(events.table(sort_by="self_device_time_total", row_limit=40) + "\n" +
                                                 events.table(sort_by="self_cpu_time_total", row_limit=25))
    return (f"512 px, editor step (CUDA graph): {launches / 3:.0f} launches, {syncs / 3:.1f} stream/device "
            f"synchronisations and {to_host / 3:.1f} copies to the host per step"), {"launches": launches / 3,
                                                                                    "syncs": syncs / 3}


def check_trainer_profile(ctx: Context):
    """Where a training iteration of the toy-faces-64 configuration spends its GPU time (batch 2048)."""
    if ctx.device.type != "cuda":
        raise Skip("the kernel profile needs CUDA")
    from torch.profiler import ProfilerActivity, profile

    from draggan.apps.training.loop import TrainConfig, train

    cfg = TrainConfig(batch=2048, kimg=2048 * 6 / 1000, snapshot_kimg=0, log_every=100, grid_size=2, r1_interval=4,
                      device=str(ctx.device))
    train(dataclasses.replace(cfg, kimg=2048 * 3 / 1000), ctx.tmp / "profile-warm", resume=False, progress=False)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        train(cfg, ctx.tmp / "profile", resume=False, progress=False)
    events = prof.key_averages()
    gpu_ms = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 1e3
    if ctx.out is not None:
        (ctx.out / "trainer_profile.txt").write_text(events.table(sort_by="self_device_time_total", row_limit=40))
    top = sorted((e for e in events if e.self_device_time_total > 0), key=lambda e: -e.self_device_time_total)[:4]
    return (f"6 iterations at batch 2048 (with 2 R1 steps): {gpu_ms:.0f} ms of GPU time; largest: " +
            ", ".join(f"{e.key[:40]} {e.self_device_time_total / 1e3:.0f} ms" for e in top)), {"gpu_ms": gpu_ms}


CHECKS: dict[str, Callable[[Context], tuple[str, dict]]] = {
    "generator": check_generator, "drag": check_drag, "bench_drag": check_bench_drag, "profile": check_profile,
    "trainer": check_trainer, "trainer_profile": check_trainer_profile, "official_preset": check_official_preset,
    "full_resolution_reference": check_full_resolution_reference, "web_editor": check_web_editor,
    "detector": check_detector, "inversion_mse": check_inversion_mse, "inversion_lpips": check_inversion_lpips,
    "evaluation": check_evaluation,
}


def run_checks(device: str = "cuda", *, quick: bool = False, resolutions=(256, 512, 1024), official_repo: str | None = None,
               only: list[str] | None = None, out_dir: str | Path | None = None,
               progress: bool = True) -> list[CheckResult]:
    """Run the checks (all, or `only` these) on `device`; prints one line per check and writes
    `gpu_check.json` and `gpu_check.md` into `out_dir` if given. With `progress`, stderr says which check runs,
    every few seconds while it lasts (the drag benchmark and the trainer probe take minutes)."""
    dev = resolve_device(device)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    unknown = set(only or []) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; the checks are {', '.join(CHECKS)}")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    print(f"gpu-check on {name} (torch {torch.__version__})", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="draggan-gpu-check-") as tmp:
        ctx = Context(dev, quick, Path(tmp), [int(r) for r in resolutions], official_repo, out)
        for check, fn in CHECKS.items():
            if only and check not in only:
                continue
            t0 = time.perf_counter()
            try:
                with phase(f"gpu-check: {check}", enabled=progress):
                    detail, metrics = fn(ctx)
                status = "ok"
            except Skip as e:
                status, detail, metrics = "skipped", str(e), {}
            except Exception as e:  # one failing path must not hide the others
                tb = traceback.format_exc().strip().splitlines()
                status, detail, metrics = "FAIL", f"{type(e).__name__}: {e}", {"traceback": tb[-12:]}
            results.append(CheckResult(check, status, time.perf_counter() - t0, detail, metrics))
            print(f"{check:<27} {status:<7} {results[-1].seconds:6.1f} s  {detail}", flush=True)
            if status == "FAIL":
                print("    " + "\n    ".join(metrics["traceback"]), flush=True)
            if out is not None:  # after every check: a run cut short keeps what it measured
                _write(out, name, results)
    return results


def _write(out: Path, device_name: str, results: list[CheckResult]) -> None:
    (out / "gpu_check.json").write_text(json.dumps({"device": device_name, "torch": torch.__version__,
                                                    "results": [dataclasses.asdict(r) for r in results]}, indent=1))
    lines = [f"# gpu-check on {device_name} (torch {torch.__version__})", "", "| check | status | time (s) | result |",
             "|---|---|---|---|"] + [f"| {r.name} | {r.status} | {r.seconds:.1f} | {r.detail} |" for r in results]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
