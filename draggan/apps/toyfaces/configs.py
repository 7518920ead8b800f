"""Schemas of the toy domain's commands: `scripts/make_toyfaces.py` (`draggan.apps.toyfaces.dataset.write_dataset`) and
`scripts/train_detector.py` (`draggan.apps.toyfaces.detector.train_detector`). Dataclasses only:
`eval.configs.register_configs` imports it for every script."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainDetectorConfig:
    out: str | None = None  # the weights file; None = the run folder (out=draggan/models/... replaces the shipped one)
    resolution: int = 64
    iterations: int = 1000  # batches of fresh renders
    batch: int = 64
    lr: float = 2e-3  # Adam, cosine decay to zero
    seed: int = 0
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, None = torch's
    device: str = "cpu"  # where the renders and the network live: cpu, cuda, cuda:N, mps


@dataclass
class MakeToyFacesConfig:
    out: str = "???"  # folder to write
    num_images: int = 10000
    resolution: int = 64
    seed: int = 0
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, None = torch's
