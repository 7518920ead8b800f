"""What an editor serves (its generators, each with its drag settings) and the limits it serves them under."""

from __future__ import annotations

from dataclasses import dataclass

from draggan import limits as input_limits
from draggan.settings import DragConfig


@dataclass
class GeneratorChoice:
    """A generator the page offers, and the drag settings that suit it."""

    name: str  # shown on the page and written into saved sessions
    source: str  # what `load_generator` takes (registered name, path)
    drag: DragConfig


@dataclass
class EditorLimits:
    max_upload_bytes: int = input_limits.MAX_UPLOAD_BYTES  # larger uploads (photos, masks) are refused
    max_session_bytes: int = 200 << 20  # a saved session that Load accepts; Save never writes a larger one
    max_sessions: int = 16  # open tabs at once
    session_timeout: float = 60.0  # seconds without a request before a tab's session is freed
    max_fps: float = 10.0  # image updates per second while a drag runs
    poll_timeout: float = 10.0  # longest wait of one long poll
    max_workers: int = 64  # connections served at once (a long poll, or a browser's idle connection, holds one)
    max_queued: int = 128  # connections waiting for a worker; more are answered 503 at once
    request_timeout: float = 20.0  # seconds a connection may stay silent (half-sent requests, idle keep-alive)

