"""Schemas of the trainer: `TrainConfig` (the settings of `draggan.apps.training.loop.train`) and `scripts/train.py`'s.

Light on purpose (dataclasses only): `eval.configs.register_configs` imports it for every script.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    resolution: int = 64  # image size (square)
    data: str = "toyfaces"  # 'toyfaces' = render on the fly; otherwise a folder of images
    z_dim: int = 128  # latent size
    w_dim: int = 128  # intermediate latent size
    mapping_layers: int = 2  # dense layers of the mapping network
    channel_base: int = 2048  # G and D channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 64
    batch: int = 32  # images per iteration
    kimg: float = 100.0  # length of the training, thousands of real images shown to D
    max_minutes: float | None = None  # stop (and save) after this wall time, None = no limit
    lr_g: float = 0.0025  # Adam learning rate of G
    lr_d: float = 0.0025  # Adam learning rate of D
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas of both
    r1_gamma: float = 0.1  # weight of the R1 penalty
    r1_interval: int = 16  # lazy regularisation: R1 every this many iterations
    style_mixing: float = 0.9  # probability of mixing two latents in a batch
    ema_kimg: float = 10.0  # half-life of the EMA of G, thousands of images
    ema_rampup: float | None = 0.05  # the half-life is at most this fraction of the images seen so far
    seed: int = 0  # seeds the weights, the latents and the data stream
    snapshot_kimg: float = 10.0  # write a snapshot (state, G_ema, sample grid) this often
    log_every: int = 20  # log metrics every this many iterations
    grid_size: int = 8  # the sample grid is grid_size x grid_size
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, None = torch's
    device: str = "auto"  # auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N, mps
    mixed_precision: str = "none"  # 'bf16': G and D passes under bfloat16 autocast (the R1 pass stays float32)
    cudnn_benchmark: bool = True  # CUDA: let cuDNN time its algorithms once for the fixed training shapes
    init_from: str | None = None  # start G and G_ema from these weights (a model name or file); D starts fresh
    d_warmup_kimg: float = 0.0  # with init_from: train only D for this many thousand images first
    state_format: str = "full"  # 'full': training-state.pt (exact); 'compact': training-state/ (small files)
    state_file_mb: float = 16.0  # compact: refuse to write a state file larger than this

    def generator_kwargs(self) -> dict[str, Any]:
        return dict(z_dim=self.z_dim, c_dim=0, w_dim=self.w_dim, img_resolution=self.resolution, img_channels=3,
                    mapping_kwargs=dict(num_layers=self.mapping_layers),
                    synthesis_kwargs=dict(channel_base=self.channel_base, channel_max=self.channel_max))


@dataclass
class TrainScriptConfig:
    """`scripts/train.py` (conf/train.yaml)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    logger: Any = None  # draggan.loggers.LoggerConfig, chosen in the logger group (registered by draggan.configs)
    out_dir: str | None = None  # None = Hydra's run folder; an existing folder with a state resumes there
    resume: bool = True  # continue from out_dir/training-state.pt when it exists
