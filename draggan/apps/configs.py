"""Schemas of the small applications in `draggan.apps` (the download, export and bench_drag commands; the editor,
the trainer and the toy domain keep theirs in their own `configs` modules), and `register_configs`, which registers
every application's schema with the library's (`draggan.configs.register_configs`). Dataclasses only, so that a
script that registers them (`scripts/download.py`) imports no machinery, and nothing of `inversion` or `eval`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DownloadConfig:
    """`scripts/download.py` (`draggan.apps.commands.download_command`)."""

    models: list[str] = field(default_factory=lambda: ["all"])  # registered names, or ["all"]
    cache_dir: str | None = None  # default: $DRAGGAN_CACHE or ~/.cache/draggan


@dataclass
class ExportConfig:
    """`scripts/export.py` (`draggan.apps.commands.export_command`)."""

    source: str = "???"  # official network pickle (PyTorch or TensorFlow), path or registered name
    output: str = "???"  # where to write the safetensors file
    progress: bool = True  # say on stderr what is converted, every few seconds while it lasts


@dataclass
class BenchDragConfig:
    """`scripts/bench_drag.py` (`draggan.apps.benchmark.bench_drag`)."""

    resolutions: list[int] = field(default_factory=lambda: [256, 512, 1024])
    devices: list[str] = field(default_factory=lambda: ["cpu", "cuda"])  # cuda is skipped when absent
    steps: int = 3  # timed steps per implementation
    warmup: int = 1  # untimed steps first
    rounds: int = 1  # rounds in which each implementation runs `steps` steps in turn (the median round counts)
    handles: list[int] = field(default_factory=lambda: [2])  # handle counts (the references run for the first)
    official_repo: str | None = None  # a checkout of github.com/XingangPan/DragGAN: also time the official step
    fp32: bool = True  # CUDA: time float32 synthesis (force_fp32)
    fp16: bool = True  # CUDA: time the official precision policy (float16 on the top 4 resolutions)
    methods: list[str] = field(default_factory=list)  # other drag methods to time beside DragGAN's step (freedrag, ...)
    threads: int | str | None = "auto"  # torch CPU threads: auto = the cores this process may use (draggan/threads.py)
    progress: bool = True  # say on stderr which row is being timed, every few seconds while it lasts


def schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, schema) of the applications' configs."""
    from draggan.apps.editor.configs import AppConfig
    from draggan.apps.toyfaces.configs import MakeToyFacesConfig, TrainDetectorConfig
    from draggan.apps.training.configs import TrainScriptConfig

    return [(None, "download_schema", DownloadConfig), (None, "export_schema", ExportConfig),
            (None, "bench_drag_schema", BenchDragConfig), (None, "train_schema", TrainScriptConfig),
            (None, "train_detector_schema", TrainDetectorConfig), (None, "make_toyfaces_schema", MakeToyFacesConfig),
            (None, "app_schema", AppConfig)]


def register_configs() -> None:
    """Register the library's schemas and the applications' (`schemas()`) in Hydra's ConfigStore."""
    from hydra.core.config_store import ConfigStore

    from draggan import configs as library

    library.register_configs()
    cs = ConfigStore.instance()
    for group, name, node in schemas():
        cs.store(group=group, name=name, node=node)
