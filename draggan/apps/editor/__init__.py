"""The web editor: `python scripts/app.py` serves a page on which to drag points of generated images
and of inverted photos, live (see `draggan.apps.editor.editor` for the model and its parts, `draggan.apps.editor.server`
for the API).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from draggan.configs import drag_config_from
from draggan.registry import MODELS

if TYPE_CHECKING:
    from draggan.apps.editor.editor import Editor, GeneratorChoice

# The editor's classes are imported on first use, so that `draggan.apps.editor.configs` (which every script's schema
# registration imports) does not load the editor.
_EXPORTS = {"Editor": "draggan.apps.editor.editor", "EditorError": "draggan.apps.editor.errors",
            "EditorLimits": "draggan.apps.editor.settings", "GeneratorChoice": "draggan.apps.editor.settings",
            "TabSession": "draggan.apps.editor.tab", "EditorServer": "draggan.apps.editor.server"}

__all__ = ["Editor", "EditorError", "EditorLimits", "EditorServer", "GeneratorChoice", "TabSession",
           "build_editor", "generator_choices", "serve"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'draggan.apps.editor' has no attribute {name!r}")


def generator_choices(cfg) -> list[GeneratorChoice]:
    """The configured generator first, then those named in `cfg.generators` (None = every registered model),
    each with the drag settings that the `drag` group gives it (see `draggan.configs.drag_config_from`)."""
    from draggan.apps.editor.settings import GeneratorChoice

    names = [str(cfg.generator)] + [str(n) for n in (MODELS if cfg.get("generators") is None else cfg.generators)]
    unique = list(dict.fromkeys(names))
    return [GeneratorChoice(name, name, drag_config_from(cfg, name)) for name in unique]


def build_editor(cfg, *, invert: Callable | None = None, out_dir: str | Path = "outputs/app") -> Editor:
    """The editor of an `app` config (see conf/app.yaml)."""
    from draggan.apps.editor.editor import Editor
    from draggan.apps.editor.settings import EditorLimits
    from draggan.loading import load_generator, resolve_device

    device = resolve_device(None if cfg.device == "auto" else cfg.device)
    limits = EditorLimits(max_upload_bytes=int(cfg.max_upload_mb * 2**20),
                          max_session_bytes=int(cfg.max_session_mb * 2**20), max_sessions=cfg.max_sessions,
                          session_timeout=cfg.session_timeout, max_fps=cfg.max_fps,
                          poll_timeout=min(10.0, cfg.session_timeout / 3))
    return Editor(generator_choices(cfg), load=lambda source: load_generator(source, device=device),
                  invert=invert, out_dir=cfg.out_dir or out_dir, truncation_psi=cfg.truncation_psi,
                  limits=limits, device=device)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve(cfg, *, invert: Callable | None = None, out_dir: str | Path = "outputs/app") -> None:
    """Serve the editor until interrupted (Ctrl-C or SIGTERM); either way its temporary files are removed."""
    from draggan.apps.editor.server import EditorServer
    from draggan.threads import synthesis_macs, use_threads

    editor = build_editor(cfg, invert=invert, out_dir=out_dir)
    try:
        G = editor.generator(editor.choice(None))  # load the default now: a broken setup fails before the page opens
        use_threads(cfg.threads, work_macs=synthesis_macs(G))  # one drag at a time: the default model's size
        try:
            server = EditorServer(editor, cfg.host, cfg.port)
        except OSError as e:
            raise SystemExit(f"cannot listen on {cfg.host}:{cfg.port} ({e.strerror}); choose another port= "
                             "(0 picks a free one)") from None
        print(f"DragGAN editor on {server.url}  (saved sessions go to {editor.out_dir}; Ctrl-C stops it)", flush=True)
        if cfg.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {cfg.host}: anyone who reaches this address can use the editor",
                  file=sys.stderr, flush=True)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stop) if main else None  # `kill` cleans up like Ctrl-C
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            print("stopped", flush=True)
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            server.server_close()
    finally:
        editor.shutdown()
