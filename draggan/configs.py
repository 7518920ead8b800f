"""Structured configs of the command-line scripts, registered in Hydra's ConfigStore.

Each YAML file in conf/ extends the schema registered here, so a misspelt key fails when the
config is composed instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from draggan.drag import PRESETS, DragConfig
from draggan.registry import DEFAULT_MODEL
from draggan.training.loop import TrainConfig


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
    register_train_configs(cs)


# The `drag` config group: a preset (recommended, paper or official; see `DragConfig.preset`) and every
# `DragConfig` setting, typed as there, which a user may give on top of it (`drag.lr=0.01`); one left `???`
# is the preset's. Made from DragConfig's fields, so that the two never drift apart;
# `draggan.edit.drag_config_from` turns it into a `DragConfig`.
_DRAG_TYPES = typing.get_type_hints(DragConfig)
DragSettings = dataclasses.make_dataclass(
    "DragSettings",
    [("preset", str, field(default="recommended"))]
    + [(f.name, _DRAG_TYPES[f.name], field(default=MISSING)) for f in dataclasses.fields(DragConfig)],
)
DragSettings.__doc__ = f"The `drag` config group: a preset ({', '.join(PRESETS)}) and DragConfig settings on top."
DragSettings.__module__ = __name__  # importable, and so picklable (the submitit launcher), from here


@dataclass
class EditConfig:
    generator: str | None = None  # registered name, path or URL of a checkpoint, or random:RES[:SEED] (untrained);
    # None = toy-faces-64, or with resume the saved session's generator
    drag: DragSettings = field(default_factory=DragSettings)
    seed: int = 0  # z of the image to edit
    truncation_psi: float = 0.7
    points: Any = None  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list; with resume, new points
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    device: str = "auto"  # auto, cpu, cuda, mps
    frame_every: int = 2  # render a frame of the animation every N steps
    video: str = "gif"  # gif or mp4
    resume: str | None = None  # folder of a saved session to continue (with new points: a new segment from its end)
    rollback_to: int | None = None  # with resume: first return to the state after this step
    progress: bool = True


def register_edit_configs(cs: ConfigStore) -> None:
    cs.store(name="edit_schema", node=EditConfig)
    cs.store(group="drag", name="drag_schema", node=DragSettings)


@dataclass
class BenchDragConfig:
    resolutions: list[int] = field(default_factory=lambda: [256, 512, 1024])
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"])  # cuda is skipped when absent
    steps: int = 3  # timed steps per implementation
    warmup: int = 1  # untimed steps first
    rounds: int = 1  # rounds in which each implementation runs `steps` steps in turn (the median round counts)
    handles: list[int] = field(default_factory=lambda: [2])  # handle counts (the references run for the first)
    official_repo: str | None = None  # a checkout of github.com/XingangPan/DragGAN: also time the official step
    fp32: bool = True  # CUDA: time float32 synthesis (force_fp32)
    fp16: bool = True  # CUDA: time the official precision policy (float16 on the top 4 resolutions)


def register_bench_configs(cs: ConfigStore) -> None:
    cs.store(name="bench_drag_schema", node=BenchDragConfig)


@dataclass
class TrainScriptConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: Any = None  # eval.logging.LoggerConfig, chosen in the logger group (registered by eval.configs)
    out_dir: str | None = None  # None = Hydra's run folder; an existing folder with a state resumes there
    resume: bool = True  # continue from out_dir/training-state.pt when it exists


@dataclass
class TrainDetectorConfig:
    out: str = "draggan/models/toyfaces-detector-64.safetensors"  # where to write the weights
    resolution: int = 64
    iterations: int = 1000  # batches of fresh renders
    batch: int = 64
    lr: float = 2e-3  # Adam, cosine decay to zero
    seed: int = 0
    threads: int | None = None  # torch CPU threads, None = torch's default
    device: str = "cpu"  # where the renders and the network live: cpu, cuda, cuda:N, mps


@dataclass
class MakeToyFacesConfig:
    out: str = "???"  # folder to write
    num_images: int = 10000
    resolution: int = 64
    seed: int = 0


@dataclass
class GatesConfig:
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    drag: DragSettings = field(default_factory=DragSettings)
    detector: str | None = None  # detector weights, None = the shipped ones
    num_samples: int = 256  # generated faces for the detection rate
    num_pairs: int = 30  # pairs of the landmark manipulation
    num_renders: int = 256  # held-out renders for the detector's error
    truncation_psi: float = 0.7
    seed: int = 0
    device: str = "cpu"  # where G, the detector and the drags run: cpu, auto, cuda, cuda:N, mps
    progress: bool = True


def register_train_configs(cs: ConfigStore) -> None:
    cs.store(name="train_schema", node=TrainScriptConfig)
    cs.store(name="train_detector_schema", node=TrainDetectorConfig)
    cs.store(name="make_toyfaces_schema", node=MakeToyFacesConfig)
    cs.store(name="gates_schema", node=GatesConfig)
