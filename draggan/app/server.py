"""The web editor's HTTP server: the page (`static/`) and a small JSON API over `draggan.app.editor`.

Plain standard-library HTTP (one thread per request), so that it runs wherever Python does, over
SSH port forwarding included, with no web framework whose upgrades could break it. The page talks
to these routes (`<sid>` is the tab's session, created by `POST /api/session`):

    GET  /api/config                 generators, defaults and limits
    GET  /api/health                 {"ok": true, "sessions": open tabs}
    POST /api/session                a new tab session -> {"sid": ...}
    GET  /api/s/<sid>/state?since=V  long poll: the tab's state once its version exceeds V
    POST /api/s/<sid>/generate       {"generator", "seed", "truncation_psi"}
    POST /api/s/<sid>/upload         the photo's bytes (X-Filename header) -> inversion in the background
    POST /api/s/<sid>/points         {"handles": [[x, y], ...], "targets": [[x, y], ...]}
    POST /api/s/<sid>/mask           a PNG the image's size (painted = may move); empty body clears
    POST /api/s/<sid>/start|pause|reset|close
    POST /api/s/<sid>/undo           {"step": k}
    GET  /api/s/<sid>/preview?step=k PNG of step k
    GET  /api/s/<sid>/result.png, /api/s/<sid>/drag.gif
    POST /api/s/<sid>/save           a zip of the saved session (also written to the output folder)
    POST /api/s/<sid>/load           multipart form of a saved zip, or of session.json + latent.npz
                                     (up to `max_session_bytes`, larger than photo uploads: a session holds
                                     the latents of every step, its GIF and, for a photo, the tuned generator)

Errors come back as {"error": message} with a 4xx status; the page shows the message.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from draggan.app.editor import Busy, Editor, EditorError, megabytes

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8"}
JSON_LIMIT = 1 << 20  # bytes of a JSON request body


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    server_version = "DragGAN-editor/1"
    protocol_version = "HTTP/1.1"
    editor: Editor  # set on the subclass made by `make_server`

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _file(self, body: bytes, content_type: str, filename: str) -> None:
        self._send(200, body, content_type, {"Content-Disposition": f'attachment; filename="{filename}"'})

    def _body(self, limit: int) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > limit:
            self._drain(length)
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the upload is {megabytes(length)}; the limit is {megabytes(limit)}")
        return self.rfile.read(length) if length else b""

    def _drain(self, length: int) -> None:
        """Read and drop a refused body (so that the browser reads the answer), unless absurdly large."""
        if length > 16 * self.editor.limits.max_upload_bytes:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _json_body(self) -> dict:
        raw = self._body(JSON_LIMIT)
        try:
            obj = json.loads(raw or b"{}")
        except json.JSONDecodeError as e:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"the request is not JSON: {e}") from None
        if not isinstance(obj, dict):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "the request must be a JSON object")
        return obj

    def _multipart(self, limit: int) -> dict[str, bytes]:
        ctype = self.headers.get("Content-Type", "")
        body = self._body(limit)
        if not ctype.startswith("multipart/form-data"):
            return {self.headers.get("X-Filename", "upload.zip"): body}
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        files = {}
        for part in msg.iter_parts():
            name = part.get_filename()
            if name:
                files[name] = part.get_payload(decode=True) or b""
        if not files:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "no files in the upload")
        return files

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        try:
            self._route(method, parts, query)
        except HTTPError as e:
            self._json({"error": str(e)}, e.status)
        except Busy as e:
            self._json({"error": str(e)}, HTTPStatus.CONFLICT)
        except EditorError as e:
            self._json({"error": str(e)}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # the server keeps serving; the page shows what went wrong
            log.exception("%s %s failed", method, self.path)
            self._json({"error": f"internal error: {type(e).__name__}: {e}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def do_GET(self):  # noqa: N802 - the base class's name
        self._dispatch("GET")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    # ------------------------------------------------------------------ routes

    def _route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        ed = self.editor
        if method == "GET" and (not parts or parts == ["index.html"]):
            return self._send(200, (STATIC / "index.html").read_bytes(), STATIC_FILES["index.html"])
        if method == "GET" and len(parts) == 2 and parts[0] == "static" and parts[1] in STATIC_FILES:
            return self._send(200, (STATIC / parts[1]).read_bytes(), STATIC_FILES[parts[1]])
        if parts[:1] != ["api"]:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no page {self.path}")
        api = parts[1:]
        if method == "GET" and api == ["config"]:
            return self._json({"generators": list(ed.choices), "default_generator": ed.default,
                               "truncation_psi": ed.truncation_psi, "can_invert": ed.invert is not None,
                               "max_upload_bytes": ed.limits.max_upload_bytes,
                               "max_session_bytes": ed.limits.max_session_bytes,
                               "poll_timeout": ed.limits.poll_timeout})
        if method == "GET" and api == ["health"]:
            ed.reap()
            return self._json({"ok": True, "sessions": len(ed.sessions)})
        if method == "POST" and api == ["session"]:
            tab = ed.open()
            return self._json({"sid": tab.sid})
        if len(api) != 3 or api[0] != "s":
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no API route {self.path}")
        sid, action = api[1], api[2]
        if method == "POST" and action == "close":
            self._body(JSON_LIMIT)
            return self._json({"closed": ed.close(sid)})
        tab = ed.get(sid)
        if tab is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "this tab's session has ended (closed or idle too long); reload the page")
        if method == "GET":
            if action == "state":
                since = int(query.get("since", -1))
                wait = min(float(query.get("wait", 0)), ed.limits.poll_timeout)
                return self._json(tab.snapshot(since, timeout=wait))
            if action == "preview":
                return self._send(200, tab.preview(int(query.get("step", 0))), "image/png")
            if action == "result.png":
                return self._file(tab.result_png(), "image/png", "draggan-result.png")
            if action == "drag.gif":
                return self._file(tab.animation(), "image/gif", "draggan-drag.gif")
        elif method == "POST":
            if action == "generate":
                b = self._json_body()
                tab.generate(b.get("generator"), b.get("seed", 0), b.get("truncation_psi"))
            elif action == "upload":
                data = self._body(ed.limits.max_upload_bytes)
                tab.upload(data, unquote(self.headers.get("X-Filename", "photo")), self.headers.get("X-Generator"))
            elif action == "points":
                b = self._json_body()
                tab.set_points(b.get("handles", []), b.get("targets", []))
            elif action == "mask":
                tab.set_mask(self._body(ed.limits.max_upload_bytes) or None)
            elif action in ("start", "pause", "reset"):
                self._body(JSON_LIMIT)
                getattr(tab, action)()
            elif action == "undo":
                tab.undo(self._json_body().get("step"))
            elif action == "save":
                self._body(JSON_LIMIT)
                name, data = tab.save()
                return self._file(data, "application/zip", name)
            elif action == "load":
                tab.load(self._multipart(ed.limits.max_session_bytes))
            else:
                raise HTTPError(HTTPStatus.NOT_FOUND, f"no action {action!r}")
            return self._json(tab.snapshot())
        raise HTTPError(HTTPStatus.NOT_FOUND, f"no route {method} {self.path}")


class EditorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, editor: Editor, host: str = "127.0.0.1", port: int = 7860):
        self.editor = editor
        handler = type("BoundHandler", (Handler,), {"editor": editor})
        super().__init__((host, port), handler)
        self._reaper = threading.Thread(target=self._reap_forever, daemon=True, name="reaper")
        self._reaper.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def _reap_forever(self) -> None:
        interval = max(0.5, min(5.0, self.editor.limits.session_timeout / 4))
        while True:
            time.sleep(interval)
            try:
                self.editor.reap()
            except Exception:  # never let the reaper die
                log.exception("reaping sessions failed")
