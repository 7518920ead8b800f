"""An editor server on a free loopback port for the duration of a test (served by a background thread)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from draggan.apps.editor import Editor
from draggan.apps.editor.server import EditorServer


@contextlib.contextmanager
def serving(editor: Editor) -> Iterator[EditorServer]:
    srv = EditorServer(editor, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        editor.shutdown()
