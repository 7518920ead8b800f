"""Structured configs of the command-line scripts, registered in Hydra's ConfigStore.

Each YAML file in conf/ extends the schema registered here, so a misspelt key fails when the
config is composed instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from draggan.drag import DragConfig


@dataclass
class DownloadConfig:
    models: list[str] = field(default_factory=lambda: ["all"])  # registered names, or ["all"]
    cache_dir: str | None = None  # default: $DRAGGAN_CACHE or ~/.cache/draggan


@dataclass
class ExportConfig:
    source: str = "???"  # official network pickle (PyTorch or TensorFlow), path or registered name
    output: str = "???"  # where to write the safetensors file


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="download_schema", node=DownloadConfig)
    cs.store(name="export_schema", node=ExportConfig)
    register_edit_configs(cs)
    register_bench_configs(cs)


@dataclass
class GeneratorConfig:
    source: str = "???"  # registered name, path, URL, or random:RES[:SEED] (an untrained network)
    feature_block: int | None = None  # overrides drag.feature_block for this generator (None = keep)


@dataclass
class EditConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    drag: DragConfig = field(default_factory=DragConfig)
    seed: int = 0  # z of the image to edit
    truncation_psi: float = 0.7
    points: Any = "???"  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    device: str = "auto"  # auto, cpu, cuda, mps
    frame_every: int = 2  # render a frame of the animation every N steps
    video: str = "gif"  # gif or mp4
    resume: str | None = None  # folder of a saved session to continue
    rollback_to: int | None = None  # with resume: first return to the state after this step
    progress: bool = True


def register_edit_configs(cs: ConfigStore) -> None:
    cs.store(name="edit_schema", node=EditConfig)
    cs.store(group="generator", name="generator_schema", node=GeneratorConfig)
    cs.store(group="drag", name="drag_schema", node=DragConfig)


@dataclass
class BenchDragConfig:
    resolutions: list[int] = field(default_factory=lambda: [256, 512, 1024])
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"])  # cuda is skipped when absent
    steps: int = 3  # timed steps per implementation
    warmup: int = 1  # untimed steps first


def register_bench_configs(cs: ConfigStore) -> None:
    cs.store(name="bench_drag_schema", node=BenchDragConfig)
