"""Configs of the inversion commands, registered in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from draggan.configs import GeneratorConfig
from draggan.drag import DragConfig
from inversion.run import InversionSettings


@dataclass
class InvertConfig:
    image: str = "???"  # the photo: any file PIL opens
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    inversion: InversionSettings = field(default_factory=InversionSettings)
    logger: Any = None  # eval.logging.LoggerConfig (the logger group)
    device: str = "auto"
    progress: bool = True


@dataclass
class EditRealConfig(InvertConfig):
    drag: DragConfig = field(default_factory=DragConfig)
    points: Any = "???"  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list
    inversion_dir: str | None = None  # reuse a finished scripts/invert.py folder instead of inverting again
    image: str | None = None  # not needed with inversion_dir
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    frame_every: int = 2
    video: str = "gif"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="invert_schema", node=InvertConfig)
    cs.store(name="edit_real_schema", node=EditRealConfig)
    cs.store(group="inversion", name="inversion_schema", node=InversionSettings)
