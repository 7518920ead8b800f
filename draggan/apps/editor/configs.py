"""The web editor's schema (`scripts/app.py`, conf/app.yaml). Dataclasses only: `draggan.apps.configs.register_configs`
imports it, and the editor stays free of `inversion` (the script passes the inversion in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from draggan.configs import DragSettings
from draggan.registry import DEFAULT_MODEL


@dataclass
class AppConfig:
    """`scripts/app.py`: the web editor (the inversion settings are those of uploaded photos)."""

    generator: str = DEFAULT_MODEL  # the page's default generator: registered name, path or URL
    drag: DragSettings = field(default_factory=DragSettings)  # for every generator the page offers
    inversion: Any = None  # inversion.configs.InversionSettings, chosen in the inversion group
    generators: list[str] | None = None  # others the page offers (names, paths); None = every registered model
    host: str = "127.0.0.1"  # 0.0.0.0 exposes the editor to the network: prefer SSH port forwarding
    port: int = 7860  # 0 = any free port (printed)
    truncation_psi: float = 0.7  # the page's starting truncation
    device: str = "auto"
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)
    out_dir: str | None = None  # where saved sessions are written (None = the run folder)
    max_upload_mb: float = 20.0  # larger photo and mask uploads are refused with a message
    max_session_mb: float = 200.0  # largest saved session that Load accepts (Save keeps its zips within it)
    max_sessions: int = 16  # open tabs at once
    session_timeout: float = 60.0  # seconds a silent tab keeps its session
    max_fps: float = 10.0  # image updates per second while a drag runs
    explain: bool = False  # print every drag setting the editor would drag with, and where it came from; then stop
