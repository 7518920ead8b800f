"""Structured configs of the command-line scripts, registered in Hydra's ConfigStore.

Each YAML file in conf/ extends the schema registered here, so a misspelt key fails when the
config is composed instead of being ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore


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
