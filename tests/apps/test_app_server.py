"""The web editor's HTTP API (`draggan.apps.editor.server`) through a real socket: routes, error answers, and a
server that keeps serving after bad requests."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from draggan.apps.editor.editor import (
    Editor,
    EditorError,
    EditorLimits,
    GeneratorChoice,
)
from draggan.apps.editor.server import EditorServer
from draggan.settings import DragConfig
from tests.conftest import tiny_generator
from tests.helpers.editor_server import serving


@pytest.fixture
def server(tmp_path):
    G = tiny_generator(32)
    editor = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=5))], load=lambda s: G,
                    out_dir=tmp_path / "saved", limits=EditorLimits(max_upload_bytes=50_000))
    with serving(editor) as srv:
        yield srv


def call(srv, path, body=None, *, method=None, headers=None):
    """(status, parsed JSON or raw bytes, headers)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw), hdrs
    return status, raw, hdrs


def new_tab(srv):
    status, body, _ = call(srv, "/api/session", b"")
    assert status == 200
    return body["sid"]


def test_page_and_static_files(server):
    status, page, hdrs = call(server, "/")
    assert status == 200 and b'<canvas id="overlay"' in page and hdrs["Content-Type"].startswith("text/html")
    assert call(server, "/static/app.js")[0] == 200
    assert call(server, "/static/../server.py")[0] == 404
    assert call(server, "/static/server.py")[0] == 404
    status, cfg, _ = call(server, "/api/config")
    assert cfg["generators"] == ["tiny"] and cfg["max_upload_bytes"] == 50_000 and not cfg["can_invert"]


def test_edit_through_the_api(server):
    sid = new_tab(server)
    status, st, _ = call(server, f"/api/s/{sid}/generate", {"seed": 3})
    assert status == 200 and st["size"] == [32, 32] and st["image"].startswith("data:image/png;base64,")
    status, st, _ = call(server, f"/api/s/{sid}/points", {"handles": [[10, 10]], "targets": [[14, 12]]})
    assert st["handles"] == [[10.0, 10.0]]
    call(server, f"/api/s/{sid}/start", b"")
    v = st["version"]
    for _ in range(50):
        status, st, _ = call(server, f"/api/s/{sid}/state?since={v}&wait=5")
        v = st["version"]
        if not st["running"] and st["step"] > 0:
            break
    assert st["step"] == 5 and st["status"] == "idle"  # stopped at the step limit of 5
    status, png, hdrs = call(server, f"/api/s/{sid}/result.png")
    assert status == 200 and Image.open(io.BytesIO(png)).size == (32, 32)
    assert 'attachment; filename="draggan-result.png"' == hdrs["Content-Disposition"]
    status, gif, _ = call(server, f"/api/s/{sid}/drag.gif")
    assert status == 200 and gif[:6] == b"GIF89a"
    status, png, _ = call(server, f"/api/s/{sid}/preview?step=2")
    assert status == 200 and png[:4] == b"\x89PNG"
    status, st, _ = call(server, f"/api/s/{sid}/undo", {"step": 2})
    assert st["step"] == 2
    status, data, hdrs = call(server, f"/api/s/{sid}/save", b"")
    assert status == 200 and hdrs["Content-Type"] == "application/zip"
    assert {"session.json", "latent.npz"} <= set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    # load it into another tab as a multipart form (what the page's file picker sends)
    sid2 = new_tab(server)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"s.zip\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, st, _ = call(server, f"/api/s/{sid2}/load", body,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and st["step"] == 2 and st["generator"] == "tiny"


def test_errors_are_messages_and_the_server_keeps_serving(server):
    sid = new_tab(server)
    status, err, _ = call(server, f"/api/s/{sid}/points", {"handles": [[1, 1]], "targets": [[2, 2]]})
    assert status == 400 and "choose a generator" in err["error"]
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    status, err, _ = call(server, f"/api/s/{sid}/points", {"handles": [[1, 99]], "targets": [[2, 2]]})
    assert status == 400 and "outside the 32x32 image" in err["error"]
    status, err, _ = call(server, f"/api/s/{sid}/points", b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in err["error"]
    status, err, _ = call(server, f"/api/s/{sid}/upload", b"hello")
    assert status == 400 and "without inversion" in err["error"]
    status, err, _ = call(server, f"/api/s/{sid}/mask", b"\0" * 60_000)
    assert status == 413 and "the limit is" in err["error"]
    status, err, _ = call(server, f"/api/s/{sid}/mask", b"not a png")
    assert status == 400 and "not an image" in err["error"]
    status, err, _ = call(server, "/api/s/nope/state")
    assert status == 404 and "reload the page" in err["error"]
    status, err, _ = call(server, f"/api/s/{sid}/fly", b"")
    assert status == 404
    status, err, _ = call(server, f"/api/s/{sid}/undo", {"step": "x"})
    assert status == 400 and "whole number" in err["error"]
    status, health, _ = call(server, "/api/health")
    assert status == 200 and health == {"ok": True, "sessions": 1}
    status, closed, _ = call(server, f"/api/s/{sid}/close", b"")
    assert closed == {"closed": True} and call(server, "/api/health")[1]["sessions"] == 0


def test_huge_upload_is_refused_before_it_is_read(server):
    sid = new_tab(server)
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    status, err, _ = call(server, f"/api/s/{sid}/mask", buf.getvalue())
    assert status == 413 and "MB; the limit is" in err["error"]
    assert call(server, "/api/health")[0] == 200


def test_a_busy_port_is_an_os_error_not_a_crash(server):
    sid = new_tab(server)
    with pytest.raises(OSError):
        EditorServer(server.editor, "127.0.0.1", server.server_address[1])
    assert call(server, "/api/health")[1]["sessions"] == 1 and call(server, f"/api/s/{sid}/state")[0] == 200


def _multipart(data: bytes, filename: str = "s.zip") -> tuple[bytes, dict]:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_a_saved_session_loads_even_when_larger_than_the_photo_limit(tmp_path):
    """Load takes sessions up to max_session_bytes, not the (smaller) limit of photo uploads: whatever Save wrote
    (its size grows with the steps and the GIF's frames), the same editor loads it."""
    G = tiny_generator(32)
    editor = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=6))], load=lambda s: G,
                    out_dir=tmp_path / "saved", limits=EditorLimits(max_upload_bytes=2_000, max_session_bytes=10 << 20))
    srv = EditorServer(editor, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        sid = new_tab(srv)
        call(srv, f"/api/s/{sid}/generate", {"seed": 1})
        call(srv, f"/api/s/{sid}/points", {"handles": [[10, 10]], "targets": [[16, 12]]})
        call(srv, f"/api/s/{sid}/start", b"")
        for _ in range(100):
            st = call(srv, f"/api/s/{sid}/state?since=-1")[1]
            if not st["running"] and st["step"] > 0:
                break
            time.sleep(0.05)
        status, data, _ = call(srv, f"/api/s/{sid}/save", b"")
        assert status == 200 and len(data) > 2_000  # larger than a photo may be
        body, headers = _multipart(data)
        status, st, _ = call(srv, f"/api/s/{new_tab(srv)}/load", body, headers=headers)
        assert status == 200 and st["step"] == 6, st
        assert call(srv, "/api/config")[1]["max_session_bytes"] == 10 << 20
        status, err, _ = call(srv, f"/api/s/{sid}/upload", b"\0" * 3_000)  # photos keep their own limit
        assert status == 413
    finally:
        srv.shutdown()
        srv.server_close()
        editor.shutdown()


def test_save_keeps_its_zip_within_what_load_accepts(tmp_path):
    G = tiny_generator(32)
    limits = EditorLimits(max_session_bytes=1 << 20)
    editor = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=4))], load=lambda s: G,
                    out_dir=tmp_path / "saved", limits=limits)
    tab = editor.open()
    tab.generate("tiny", 0)
    tab.set_points([[10, 10]], [[14, 10]])
    tab.start()
    for _ in range(200):
        if not tab.running:
            break
        time.sleep(0.02)
    full = len(tab.save()[1])
    names = set(zipfile.ZipFile(io.BytesIO(tab.save()[1])).namelist())
    assert "drag.gif" in names
    gif = (next((tmp_path / "saved").iterdir()) / "drag.gif").stat().st_size
    limits.max_session_bytes = full - gif // 2  # the GIF no longer fits: it is left out, and the page is told
    _, data = tab.save()
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert len(data) <= limits.max_session_bytes and "drag.gif" not in names and "latent.npz" in names
    assert "leaves out drag.gif" in tab.snapshot()["message"]
    limits.max_session_bytes = 100  # not even the latents fit: refused, with where the folder is
    with pytest.raises(EditorError, match="max_session_mb"):
        tab.save()
    editor.shutdown()
