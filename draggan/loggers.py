"""The experiment-logger contract, in one place: what the library's long runs (training, inversion, evaluation)
call on a logger. `eval.logging` implements it with W&B (only `eval/` and `scripts/` import W&B); `NullLogger`
is the logger that logs nothing (`logger=none`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass
class LoggerConfig:
    """The `logger` config group (conf/logger/): W&B (`eval.logging`) or none."""

    kind: str = "wandb"  # wandb or none
    project: str = "draggan"  # W&B project
    mode: str = "offline"  # W&B mode: offline (default, no account needed), online or disabled
    name: str | None = None  # run name, None = W&B's choice
    tags: list[str] = field(default_factory=list)


class Logger(Protocol):
    """Every method a caller may use; an implementation provides all of them."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Scalar metrics at `step`."""

    def log_image(self, name: str, path: Path, step: int) -> None:
        """An image file (PNG) at `step`."""

    def log_video(self, name: str, path: Path, step: int) -> None:
        """A GIF or MP4 file, shown as a video, at `step`."""

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table of `rows`, each with a value per column."""

    def log_config(self, values: dict[str, Any]) -> None:
        """Values to keep with the run's configuration (the drag settings and their sources, say)."""

    def finish(self) -> None:
        """Flush and close the run."""


class NullLogger:
    """Logs nothing (logger=none)."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_image(self, name: str, path: Path, step: int) -> None:
        pass

    def log_video(self, name: str, path: Path, step: int) -> None:
        pass

    def log_table(self, name: str, columns: list[str], rows: list[list[Any]]) -> None:
        pass

    def log_config(self, values: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass
