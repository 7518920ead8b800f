"""Experiment logging: W&B (offline by default: no account needed, `wandb sync` later) or nothing.

Only `eval/` and `scripts/` import W&B; the library takes any `draggan.loggers.Logger` (the contract: every
method below), and `draggan.loggers.NullLogger` logs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from draggan.loggers import LoggerConfig, NullLogger


class WandbLogger:
    """A `draggan.loggers.Logger` on a W&B run whose files live in `run_dir/wandb`."""

    def __init__(self, cfg: LoggerConfig, run_dir: str | Path, config: dict[str, Any] | None = None):
        import wandb

        if cfg.mode not in ("offline", "online", "disabled"):
            raise ValueError(f"logger.mode must be offline, online or disabled, got {cfg.mode!r}")
        os.environ.setdefault("WANDB_SILENT", "true")
        self._wandb = wandb
        self.run = wandb.init(project=cfg.project, mode=cfg.mode, name=cfg.name, tags=list(cfg.tags),
                              dir=str(run_dir), config=config or {}, reinit="finish_previous")
        self.dir = Path(self.run.dir) if cfg.mode != "disabled" else None

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def log_image(self, name: str, path: Path, step: int) -> None:
        self.run.log({name: self._wandb.Image(str(path))}, step=step)

    def log_video(self, name: str, path: Path, step: int) -> None:
        """A GIF (or MP4) file, shown as a video."""
        self.run.log({name: self._wandb.Video(str(path), format=Path(path).suffix.lstrip(".").lower())}, step=step)

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        self.run.log({name: self._wandb.Table(columns=list(columns), data=[list(r) for r in rows])})

    def log_config(self, values: dict[str, Any]) -> None:
        self.run.config.update(values, allow_val_change=True)

    def finish(self) -> None:
        self.run.finish()


def make_logger(cfg: LoggerConfig, run_dir: str | Path, config: dict[str, Any] | None = None):
    """The logger that `cfg.kind` names."""
    if cfg.kind == "none":
        return NullLogger()
    if cfg.kind == "wandb":
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        return WandbLogger(cfg, run_dir, config)
    raise ValueError(f"logger.kind must be wandb or none, got {cfg.kind!r}")


def run_logged(cfg, out_dir: str | Path, run, **kwargs):
    """`run(cfg, out_dir, logger=..., **kwargs)` with the logger that `cfg.logger` names, finished afterwards."""
    from omegaconf import OmegaConf

    logger = make_logger(cfg.logger, out_dir, OmegaConf.to_container(cfg, resolve=True))
    try:
        return run(cfg, out_dir, logger=logger, **kwargs)
    finally:
        logger.finish()
