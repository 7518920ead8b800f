"""The StyleGAN2 training loop: non-saturating loss, lazy R1, an exponential moving average of G.

One iteration: a generator step on `batch` fresh latents (with style mixing), then a discriminator
step on as many fakes and reals, with the R1 penalty added every `r1_interval` iterations (scaled by
the interval, and the discriminator's Adam settings adjusted as in Karras et al. 2020, appendix B).
The EMA generator `G_ema` is what gets saved and used. Everything needed to continue is written to
`training-state.pt` at each snapshot, and `resume` picks it up: the data stream, latents and
optimisers continue exactly where they stopped. With `state_format='compact'` the state is the folder
`training-state/` of `draggan.apps.training.state` instead (files of at most `state_file_mb`, Adam's
moments in bfloat16), for trainings that run in short chunks whose outputs must travel in small files.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from draggan.checkpoint import save_generator
from draggan.files import atomic_write
from draggan.loading import resolve_device
from draggan.loggers import Logger
from draggan.networks import Generator
from draggan.render import save_sample_grid
from draggan.threads import synthesis_macs, use_threads
from draggan.apps.training.configs import TrainConfig
from draggan.apps.training.data import ImageFolder, ToyFacesStream
from draggan.apps.training.discriminator import Discriminator
from draggan.apps.training import state as compact_state
from draggan.apps.training.loss import discriminator_loss, generator_loss, r1_penalty

STATE_FILE = "training-state.pt"


@dataclass
class TrainResult:
    out_dir: Path
    generator_path: Path  # the last G_ema snapshot
    kimg: float  # images seen, thousands
    iterations: int
    wall_seconds: float  # of this run (not counting earlier runs that were resumed)
    total_wall_seconds: float  # of all runs
    metrics: dict[str, float] = field(default_factory=dict)  # the last logged values


def _update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    with torch.no_grad():  # a few multi-tensor kernels, not two per parameter
        torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - beta)
        torch._foreach_copy_(list(G_ema.buffers()), list(G.buffers()))


class LatentSource:
    """The latents of the training and the style-mixing draws, reproducible and resumable.

    On the CPU one generator serves both (the stream of earlier versions). On a GPU the latents are
    drawn on the device (no host-to-device copy that would stall the queue of kernels) and the
    mixing decisions, which the host needs, from a CPU generator.
    """

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self.host = torch.Generator().manual_seed(seed)
        self.latent = self.host if device.type == "cpu" else torch.Generator(device).manual_seed(seed)

    def z(self, batch: int, z_dim: int) -> torch.Tensor:
        return torch.randn([batch, z_dim], generator=self.latent, device=self.latent.device)

    def mixing_cutoff(self, prob: float, num_ws: int) -> int | None:
        """Where the second latent takes over, or None (no mixing in this batch)."""
        if prob > 0 and torch.rand([], generator=self.host).item() < prob:
            return int(torch.randint(1, num_ws, [], generator=self.host))
        return None

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"latent_rng": self.host.get_state()}
        if self.latent is not self.host:
            state["device_latent_rng"] = self.latent.get_state()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.host.set_state(state["latent_rng"].cpu())  # generator states are CPU byte tensors
        if self.latent is not self.host and "device_latent_rng" in state:
            self.latent.set_state(state["device_latent_rng"].cpu())


def _mixed_latents(G: Generator, z: torch.Tensor, prob: float, latents: LatentSource) -> torch.Tensor:
    ws = G.mapping(z, None, update_emas=True)
    cutoff = latents.mixing_cutoff(prob, ws.shape[1])
    if cutoff is not None:
        z2 = latents.z(*z.shape)
        ws[:, cutoff:] = G.mapping(z2, None, update_emas=False)[:, cutoff:]
    return ws


def _save_state(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = True, logger: Logger | None = None,
          on_snapshot: Callable[[Path], None] | None = None, progress: bool = True) -> TrainResult:
    """Train (or continue training, if `out_dir` holds a state and `resume`) a StyleGAN2 on `cfg.data`."""
    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    try:
        return _train(cfg, out_dir, resume=resume, logger=logger, on_snapshot=on_snapshot, progress=progress)
    finally:
        torch.backends.cudnn.benchmark = saved


def _train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool, logger: Logger | None,
           on_snapshot: Callable[[Path], None] | None, progress: bool) -> TrainResult:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    G = Generator(**cfg.generator_kwargs()).to(device).train()
    use_threads(cfg.threads, work_macs=synthesis_macs(G, batch=cfg.batch))
    D = Discriminator(cfg.resolution, channel_base=cfg.channel_base, channel_max=cfg.channel_max).to(device).train()
    if cfg.init_from:
        _init_generator(G, cfg.init_from)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    c = cfg.r1_interval / (cfg.r1_interval + 1)  # lazy regularisation's correction of D's Adam settings
    if cfg.mixed_precision not in ("none", "bf16"):
        raise ValueError(f"mixed_precision must be 'none' or 'bf16', got {cfg.mixed_precision!r}")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.mixed_precision == "bf16" \
        else contextlib.nullcontext
    fused = True if device.type == "cuda" else None  # one kernel per optimiser step on CUDA
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, eps=1e-8, fused=fused)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * c, betas=(cfg.betas[0] ** c, cfg.betas[1] ** c), eps=1e-8,
                             fused=fused)
    latents = LatentSource(cfg.seed, device)
    data = ToyFacesStream(cfg.resolution, seed=cfg.seed) if cfg.data == "toyfaces" else \
        ImageFolder(cfg.data, cfg.resolution, seed=cfg.seed)
    grid_z = torch.randn([cfg.grid_size ** 2, cfg.z_dim], generator=torch.Generator().manual_seed(cfg.seed + 1))

    if cfg.state_format not in ("full", "compact"):
        raise ValueError(f"state_format must be 'full' or 'compact', got {cfg.state_format!r}")
    it, nimg, wall_before = 0, 0, 0.0
    state_path = out_dir / STATE_FILE
    compact_dir = out_dir / compact_state.STATE_DIR
    # Either kind of state resumes, whichever the run writes (the one it writes first when both exist).
    kinds = (cfg.state_format, "compact" if cfg.state_format == "full" else "full")
    found = [k for k in kinds if (state_path.exists() if k == "full" else compact_state.exists(compact_dir))]
    if resume and found:
        if found[0] == "full":
            state = torch.load(state_path, map_location=device, weights_only=True)
            _check_resumable(state["config"], cfg, state_path)
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            G_ema.load_state_dict(state["G_ema"])
            opt_G.load_state_dict(state["opt_G"])
            opt_D.load_state_dict(state["opt_D"])
        else:
            _check_resumable(compact_state.read_config(compact_dir), cfg, compact_dir)
            state, counters = compact_state.load(compact_dir, G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D,
                                                 device=device)
            state.update(counters)
        latents.load_state_dict(state)
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())  # the synthesis noise (on the CPU)
        if "cuda_rng" in state and device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)  # the synthesis noise (on the GPU)
        it, nimg, wall_before = state["iteration"], state["nimg"], state["wall_seconds"]

    total = int(cfg.kimg * 1000)
    t_start = time.perf_counter()
    metrics: dict[str, float] = {}
    last_snapshot = nimg // int(cfg.snapshot_kimg * 1000) if cfg.snapshot_kimg > 0 else 0
    generator_path = out_dir / "network-final.safetensors"

    def snapshot(final: bool) -> None:
        nonlocal generator_path
        kimg = nimg / 1000
        generator_path = save_generator(G_ema, out_dir / ("network-final.safetensors" if final else
                                                          f"network-snapshot-{kimg:09.3f}kimg.safetensors"),
                                        extra_metadata={"kimg": f"{kimg:.3f}"})
        grid = save_sample_grid(G_ema, grid_z.to(device), out_dir / f"samples-{kimg:09.3f}kimg.png", grid=cfg.grid_size)
        rng = dict(**latents.state_dict(), torch_rng=torch.get_rng_state(),
                   **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}))
        counters = dict(iteration=it, nimg=nimg, wall_seconds=wall_before + time.perf_counter() - t_start)
        if cfg.state_format == "compact":
            compact_state.save(compact_dir, G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D, rng=rng,
                               counters=counters, config=_plain_config(cfg), limit_mb=cfg.state_file_mb)
        else:
            _save_state(dict(G=G.state_dict(), D=D.state_dict(), G_ema=G_ema.state_dict(),
                             opt_G=opt_G.state_dict(), opt_D=opt_D.state_dict(), **rng, **counters,
                             config=_plain_config(cfg)), state_path)
        if logger is not None:
            logger.log_image("samples", grid, it)
        if on_snapshot is not None:
            on_snapshot(generator_path)

    bar = tqdm(total=total, initial=min(nimg, total), unit="img", unit_scale=True, desc="train", dynamic_ncols=True,
               disable=not progress)
    last_r1 = torch.full([], float("nan"), device=device)
    timed_out = False
    log_time, log_nimg = t_start, nimg
    while nimg < total:
        if cfg.max_minutes is not None and time.perf_counter() - t_start > cfg.max_minutes * 60:
            timed_out = True
            break
        real = data.batch(it, cfg.batch, device=device)
        # Generator step (skipped while a fresh D warms up on an initialised G).
        z = latents.z(cfg.batch, cfg.z_dim)
        if nimg >= cfg.d_warmup_kimg * 1000:
            D.requires_grad_(False)
            with amp():
                fake = G.synthesis(_mixed_latents(G, z, cfg.style_mixing, latents), noise_mode="random")
                fake_logits = D(fake).float()
            loss_G = generator_loss(fake_logits)
            opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            opt_G.step()
            D.requires_grad_(True)
        else:
            loss_G = torch.zeros([], device=device)
        # Discriminator step (with lazy R1).
        z = latents.z(cfg.batch, cfg.z_dim)
        with torch.no_grad(), amp():
            fake = G.synthesis(_mixed_latents(G, z, cfg.style_mixing, latents), noise_mode="random")
        do_r1 = cfg.r1_gamma > 0 and it % cfg.r1_interval == 0
        # In float32 the R1 gradient comes from the same pass; under autocast, from a float32 pass of its own.
        r1_same_pass = do_r1 and cfg.mixed_precision == "none"
        real.requires_grad_(r1_same_pass)
        with amp():
            real_logits, fake_logits = D(real).float(), D(fake).float()
        loss_D = discriminator_loss(real_logits, fake_logits)
        loss = loss_D
        if do_r1:
            r1_real = real if r1_same_pass else real.detach().requires_grad_(True)
            r1 = r1_penalty(real_logits if r1_same_pass else D(r1_real), r1_real).mean()
            loss = loss_D + r1 * (cfg.r1_gamma / 2) * cfg.r1_interval
            last_r1 = r1.detach()  # read at the next log, not here (a read is a GPU synchronisation)
        opt_D.zero_grad(set_to_none=True)
        loss.backward()
        opt_D.step()
        # EMA of G.
        nimg += cfg.batch
        it += 1
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
        _update_ema(G_ema, G, 0.5 ** (cfg.batch / max(ema_nimg, 1e-8)))
        bar.update(cfg.batch)
        if it % cfg.log_every == 0 or nimg >= total:
            now = time.perf_counter()
            values = torch.stack([loss_G.detach(), loss_D.detach(), real_logits.detach().mean(),
                                  fake_logits.detach().mean(), last_r1]).tolist()  # one read for all
            metrics.update(dict(zip(("loss_G", "loss_D", "D_real", "D_fake"), values[:4])), kimg=nimg / 1000,
                           img_per_sec=(nimg - log_nimg) / max(now - log_time, 1e-9))
            if cfg.r1_gamma > 0:
                metrics["r1"] = values[4]
            log_time, log_nimg = now, nimg
            bar.set_postfix(loss_G=f"{metrics['loss_G']:.3f}", loss_D=f"{metrics['loss_D']:.3f}")
            if logger is not None:
                logger.log(dict(metrics), it)
        if cfg.snapshot_kimg > 0 and nimg // int(cfg.snapshot_kimg * 1000) > last_snapshot:
            last_snapshot = nimg // int(cfg.snapshot_kimg * 1000)
            snapshot(final=False)
    bar.close()
    snapshot(final=True)
    wall = time.perf_counter() - t_start
    if timed_out:
        print(f"train: stopped after max_minutes={cfg.max_minutes} at {nimg / 1000:.1f} of {cfg.kimg} kimg; "
              f"run again with the same out_dir to continue")
    return TrainResult(out_dir=out_dir, generator_path=generator_path, kimg=nimg / 1000, iterations=it,
                       wall_seconds=wall, total_wall_seconds=wall_before + wall,
                       metrics=dict(metrics))


def _init_generator(G: Generator, source: str) -> None:
    """Copy the weights of `source` (a registered name or a generator file) into G; shapes must match."""
    from draggan.loading import load_generator

    src = load_generator(source, "cpu", download=False)
    ours, theirs = G.state_dict(), src.state_dict()
    mismatched = sorted(k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape)
    if mismatched or set(theirs) - set(ours):
        raise ValueError(f"init_from={source!r} does not match the configured generator "
                         f"(resolution, z/w dims, mapping layers, channels); first differences: "
                         f"{(mismatched or sorted(set(theirs) - set(ours)))[:5]}")
    G.load_state_dict(theirs)


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig, where: Path) -> None:
    """Refuse to continue a state under a different model or recipe; run-length and housekeeping may change."""
    ours = _plain_config(cfg)
    changed = sorted(k for k in set(saved) | set(ours) if saved.get(k, _DEFAULTS.get(k)) != ours.get(k))
    allowed = {"kimg", "max_minutes", "snapshot_kimg", "log_every", "threads", "device", "state_format",
               "state_file_mb", "grid_size"}
    if set(changed) - allowed:
        raise ValueError(f"{where} was written with a different configuration ({', '.join(changed)}); "
                         f"use a new output folder or resume=false")


def _plain_config(cfg: TrainConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["betas"] = list(d["betas"])
    return d



_DEFAULTS = _plain_config(TrainConfig())  # a field missing from an older state had its default
