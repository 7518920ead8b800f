"""The web editor's model: the `Editor` that owns the open tabs (`draggan.apps.editor.tab.TabSession`, one
per browser tab) and the generators they share.

The editor's parts, each in its own module: the tab's session (`tab`), what the editor serves and its
limits (`settings`), the parsing of request values (`values`), a session as a zip (`session_zip`), the
errors the page is told (`errors`); `draggan.apps.editor.server` puts HTTP in front of it. The names that
other modules import from here (`Editor`, `TabSession`, `EditorError`, `Busy`, `EditorLimits`,
`GeneratorChoice`, `whole_number`, `real_number`, `megabytes`) stay importable from this module.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from draggan.apps.editor.errors import Busy, Cancelled, EditorError
from draggan.apps.editor.settings import EditorLimits, GeneratorChoice
from draggan.apps.editor.tab import TabSession
from draggan.apps.editor.values import megabytes, real_number, shown, whole_number
from draggan.networks import Generator

__all__ = ["Busy", "Cancelled", "Editor", "EditorError", "EditorLimits", "GeneratorChoice", "TabSession",
           "megabytes", "real_number", "whole_number"]

log = logging.getLogger(__name__)


class Editor:
    """The server's state: the generators it offers (loaded once, shared read-only by the tabs) and the
    open tabs' sessions. Temporary files live under one folder, `tmp_root`, removed by `shutdown`."""

    def __init__(self, choices: list[GeneratorChoice], *, load: Callable[[str], Generator],
                 invert: Callable[..., tuple[Generator, torch.Tensor]] | None = None,
                 out_dir: str | Path = "outputs/app", truncation_psi: float = 0.7,
                 limits: EditorLimits | None = None, device: torch.device | str = "cpu"):
        """`load(source)` gives a generator; `invert(G, path, callback=..., on_domain=...)` gives (tuned G, ws) for a
        photo, calling `callback(phase, step, num_steps)` after each step and `on_domain(verdict)` with its domain
        verdict (`inversion.run.invert_photo`)."""
        if not choices:
            raise ValueError("the editor needs at least one generator")
        self.choices = {c.name: c for c in choices}
        self.default = choices[0].name
        self._load, self.invert = load, invert
        self.out_dir = Path(out_dir)
        self.truncation_psi = truncation_psi
        self.limits = limits or EditorLimits()
        self.device = torch.device(device)
        self.sessions: dict[str, TabSession] = {}
        self._generators: dict[str, Generator] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.tmp_root = Path(tempfile.mkdtemp(prefix="draggan-app-"))
        roots = sorted({str(self.tmp_root), os.path.realpath(self.tmp_root)}, key=len, reverse=True)
        self._tmp_paths = re.compile("(?:" + "|".join(map(re.escape, roots)) + r")(?:/[^\s'\",;:)]*)?")

    def redact(self, message: str, folder: Path | None = None) -> str:
        """`message` without the server's temporary paths (the page has no use for them, and a public editor
        should not show them): a temporary file is named by its base name (`folder`, a session being
        loaded, as "the session"), a folder of the editor's own as "the server's temporary folder"."""
        def name(match: re.Match) -> str:
            path = Path(match[0])
            if folder is not None and path == folder:
                return "the session"
            if path == self.tmp_root or path.parent == self.tmp_root or path.name.startswith(("tab-", "load-")):
                return "the server's temporary folder"
            return path.name

        return self._tmp_paths.sub(name, message)

    def choice(self, name: Any) -> GeneratorChoice:
        name = self.default if name in (None, "") else name
        if not isinstance(name, str) or name not in self.choices:
            raise EditorError(f"unknown generator {shown(name)}; this server offers {', '.join(self.choices)}")
        return self.choices[name]

    def generator(self, choice: GeneratorChoice) -> Generator:
        with self._load_lock:
            if choice.name not in self._generators:
                try:
                    G = self._load(choice.source)
                except Exception as e:  # missing weights, no network: the message says what to do
                    raise EditorError(f"could not load {choice.name}: {e}") from None
                self._generators[choice.name] = G.eval().requires_grad_(False)
            return self._generators[choice.name]

    def open(self) -> TabSession:
        self.reap()
        with self._lock:
            if len(self.sessions) >= self.limits.max_sessions:
                raise Busy(f"{len(self.sessions)} tabs are open, the limit of this server; close one")
            sid = secrets.token_urlsafe(12)
            tab = self.sessions[sid] = TabSession(self, sid)
        return tab

    def get(self, sid: str) -> TabSession | None:
        with self._lock:
            tab = self.sessions.get(sid)
        if tab is not None:
            tab.touch()
        return tab

    @contextlib.contextmanager
    def using(self, sid: str) -> Iterator[TabSession | None]:
        """The tab `sid` (None if there is none) while a request of it is served: it is not reaped meanwhile,
        and its silence is counted from the request's end."""
        with self._lock:
            tab = self.sessions.get(sid)
            if tab is not None:
                tab.in_flight += 1
                tab.touch()
        try:
            yield tab
        finally:
            if tab is not None:
                with self._lock:
                    tab.in_flight -= 1
                    tab.touch()

    def close(self, sid: str) -> bool:
        with self._lock:
            tab = self.sessions.pop(sid, None)
        if tab is not None:
            tab.close()
        return tab is not None

    def reap(self) -> int:
        """Free the sessions of tabs that have not been heard from for `session_timeout` seconds and have no
        request in flight."""
        now = time.monotonic()
        with self._lock:
            stale = [sid for sid, t in self.sessions.items()
                     if t.in_flight == 0 and now - t.last_seen > self.limits.session_timeout]
            tabs = [self.sessions.pop(sid) for sid in stale]
        for tab in tabs:
            log.info("freeing the session of a silent tab (%s)", tab.sid[:6])
            tab.close()
        return len(tabs)

    def shutdown(self) -> None:
        """Close every tab and remove the temporary folder (uploaded photos included)."""
        with self._lock:
            tabs = list(self.sessions.values())
            self.sessions.clear()
        for tab in tabs:
            tab.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)

