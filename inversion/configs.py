"""Configs of the inversion commands, registered in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from draggan.configs import DragSettings
from draggan.registry import DEFAULT_MODEL
from inversion.run import InversionSettings


@dataclass
class InvertConfig:
    image: str = "???"  # the photo: any file PIL opens
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    inversion: InversionSettings = field(default_factory=InversionSettings)
    logger: Any = None  # eval.logging.LoggerConfig (the logger group)
    device: str = "auto"
    progress: bool = True


@dataclass
class EditRealConfig(InvertConfig):
    drag: DragSettings = field(default_factory=DragSettings)
    points: Any = "???"  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list
    inversion_dir: str | None = None  # reuse a finished scripts/invert.py folder instead of inverting again
    image: str | None = None  # not needed with inversion_dir
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    frame_every: int = 2
    video: str = "gif"


@dataclass
class AppConfig:
    """`scripts/app.py`: the web editor (the inversion settings are those of uploaded photos)."""

    generator: str = DEFAULT_MODEL  # the page's default generator: registered name, path or URL
    drag: DragSettings = field(default_factory=DragSettings)  # for every generator the page offers
    inversion: InversionSettings = field(default_factory=InversionSettings)
    generators: list[str] | None = None  # others the page offers (names, paths); None = every registered model
    host: str = "127.0.0.1"  # 0.0.0.0 exposes the editor to the network: prefer SSH port forwarding
    port: int = 7860  # 0 = any free port (printed)
    truncation_psi: float = 0.7  # the page's starting truncation
    device: str = "auto"
    threads: int | None = None  # torch CPU threads (None = torch's default)
    out_dir: str | None = None  # where saved sessions are written (None = the run folder)
    max_upload_mb: float = 20.0  # larger photo and mask uploads are refused with a message
    max_session_mb: float = 200.0  # largest saved session that Load accepts (Save keeps its zips within it)
    max_sessions: int = 16  # open tabs at once
    session_timeout: float = 60.0  # seconds a silent tab keeps its session
    max_fps: float = 10.0  # image updates per second while a drag runs


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="invert_schema", node=InvertConfig)
    cs.store(name="edit_real_schema", node=EditRealConfig)
    cs.store(name="app_schema", node=AppConfig)
    cs.store(group="inversion", name="inversion_schema", node=InversionSettings)
