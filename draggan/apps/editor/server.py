"""The web editor's HTTP server: the page (`static/`) and a small JSON API over `draggan.apps.editor.editor`.

Plain standard-library HTTP, hardened, so that it runs wherever Python does, over SSH port forwarding
included, with no web framework whose upgrades could break it. Hardening it took less than moving the
API to a maintained stack would (uvicorn/Starlette or aiohttp: new dependencies, an async rewrite of
the long poll and of the threads that run drags and inversions, and the same Host/Origin checks to
write anyway), so the server keeps the standard library and adds:

- socket timeouts (`EditorLimits.request_timeout`): a connection that sends half a request, or stays
  idle between requests, is closed after that many seconds;
- a bounded pool of `max_workers` threads with a queue of `max_queued` connections; beyond that a
  connection is answered 503 at once, so a flood costs neither threads nor memory;
- Host and Origin checks: a request whose Host is not a name of the address the server listens on
  (loopback by default: `localhost`, `127.0.0.1`, `[::1]`) is refused (DNS rebinding), and so is one whose
  Origin is not the page's own (cross-site posts, `text/plain` forms included). The tab's session id
  stays the capability that a request must present;
- 400 answers for malformed numbers, lengths and files (JSON bodies under the JSON limits, every number
  parsed with bounds: `values`; multipart bodies by a parser bounded in parts: `multipart`), messages
  without the server's temporary paths, and a 500 that names nothing internal.

The page talks to these routes (`<sid>` is the tab's session, created by `POST /api/session`):

    GET  /api/config                 generators, defaults and limits
    GET  /api/health                 {"ok": true, "sessions": open tabs}
    POST /api/session                a new tab session -> {"sid": ...}
    GET  /api/s/<sid>/state?since=V  long poll: the tab's state once its version exceeds V
    POST /api/s/<sid>/generate       {"generator", "seed", "truncation_psi"}
    POST /api/s/<sid>/upload         the photo's bytes (X-Filename header) -> inversion in the background
    POST /api/s/<sid>/points         {"handles": [[x, y], ...], "targets": [[x, y], ...]} (at most MAX_POINTS pairs)
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

import ipaddress
import json
import logging
import queue
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from draggan.apps.editor.editor import Editor
from draggan.apps.editor.errors import Busy, EditorError
from draggan.apps.editor.multipart import multipart_files
from draggan.apps.editor.values import json_object, megabytes, real_number, whole_number
from draggan.limits import MAX_POINTS

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "app.css": "text/css; charset=utf-8"}
JSON_LIMIT = 1 << 20  # bytes of a JSON request body
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _host_name(value: str) -> str | None:
    """The host of a Host header or an Origin's netloc, lower case, without port or brackets."""
    try:
        return urlsplit("//" + value.strip()).hostname
    except ValueError:
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "DragGAN-editor/1"
    protocol_version = "HTTP/1.1"
    editor: Editor  # set on the subclass made by `EditorServer`
    allowed_hosts: frozenset[str] | None  # None = any Host (the server listens on every address)
    idle_timeout = 5.0  # seconds a kept-alive connection may wait for its next request (it holds a worker)

    def setup(self) -> None:
        super().setup()
        self.requests_served = 0

    def handle_one_request(self) -> None:
        if self.requests_served:  # between requests: an idle browser connection gives its worker back soon
            self.connection.settimeout(min(self.idle_timeout, self.timeout))
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.connection.settimeout(self.timeout)  # the request line arrived: the rest gets `request_timeout`
        self.requests_served += 1
        return super().parse_request()

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
        value = self.headers.get("Content-Length") or "0"
        if not re.fullmatch(r"\s*\d{1,18}\s*", value):
            self.close_connection = True  # the body's end is unknown: the connection cannot be reused
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {value[:20]!r}")
        length = int(value)
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
        """The request's JSON object, under the JSON limits (`draggan.apps.editor.values.json_object`)."""
        return json_object(self._body(JSON_LIMIT), max_bytes=JSON_LIMIT)

    def _multipart(self, limit: int) -> dict[str, bytes]:
        ctype = self.headers.get("Content-Type", "")
        body = self._body(limit)
        if not ctype.startswith("multipart/form-data"):
            return {self.headers.get("X-Filename", "upload.zip"): body}
        return multipart_files(body, ctype)

    def _check_origin(self, method: str) -> None:
        """Refuse requests for another host name (DNS rebinding) and requests made by another site's page."""
        host = self.headers.get("Host")
        if host is None:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "a request without a Host header")
        if self.allowed_hosts is not None and _host_name(host) not in self.allowed_hosts:
            raise HTTPError(HTTPStatus.FORBIDDEN, f"this editor answers requests for "
                            f"{', '.join(sorted(self.allowed_hosts))} only (Host: {host[:60]!r})")
        origin = self.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.strip().lower():
                raise HTTPError(HTTPStatus.FORBIDDEN, "requests from other sites' pages are refused")
        elif method == "POST" and self.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
            raise HTTPError(HTTPStatus.FORBIDDEN, "requests from other sites' pages are refused")

    def _dispatch(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        except ValueError:
            url, query = urlsplit("/bad-request"), {}
        parts = [p for p in url.path.split("/") if p]
        try:
            self._check_origin(method)
            self._route(method, parts, query)
        except HTTPError as e:
            self._json({"error": str(e)}, e.status)
        except Busy as e:
            self._json({"error": self.editor.redact(str(e))}, HTTPStatus.CONFLICT)
        except EditorError as e:
            self._json({"error": self.editor.redact(str(e))}, HTTPStatus.BAD_REQUEST)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # the server keeps serving; the page says so, the log has the details
            log.exception("%s %s failed", method, self.path)
            self._json({"error": "internal error: the server's log has the details"}, HTTPStatus.INTERNAL_SERVER_ERROR)

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
                               "max_upload_bytes": ed.limits.max_upload_bytes, "max_points": MAX_POINTS,
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
        with ed.using(sid) as tab:  # a tab with a request in flight is never reaped
            if tab is None:
                raise HTTPError(HTTPStatus.NOT_FOUND,
                                "this tab's session has ended (closed or idle too long); reload the page")
            return self._tab_route(tab, method, action, query)

    def _tab_route(self, tab, method: str, action: str, query: dict[str, str]) -> None:
        ed = self.editor
        if method == "GET":
            if action == "state":
                since = whole_number(query.get("since", -1), "since", -1, 2**62)
                wait = min(real_number(query.get("wait", 0), "wait", 0, 3600), ed.limits.poll_timeout)
                return self._json(tab.snapshot(since, timeout=wait))
            if action == "preview":
                return self._send(200, tab.preview(query.get("step", 0)), "image/png")
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
                handles, targets = b.get("handles", []), b.get("targets", [])
                if not isinstance(handles, list) or not isinstance(targets, list):
                    raise EditorError("handles and targets must be lists of [x, y]")
                tab.set_points(handles, targets)
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


class EditorServer(HTTPServer):
    """The HTTP server of an `Editor`: a bounded pool of worker threads, socket timeouts, Host checks, and a
    reaper of silent tabs (see the module docstring)."""

    allow_reuse_address = True

    def __init__(self, editor: Editor, host: str = "127.0.0.1", port: int = 7860):
        self.editor = editor
        limits = editor.limits
        handler = type("BoundHandler", (Handler,), {"editor": editor, "timeout": limits.request_timeout,
                                                    "allowed_hosts": allowed_hosts(host)})
        self._connections: queue.Queue = queue.Queue(maxsize=limits.max_queued)
        self._workers: list[threading.Thread] = []  # started as connections need them, up to max_workers
        self._idle = 0  # workers waiting for a connection
        self._pool_lock = threading.Lock()
        self._closing = False
        super().__init__((host, port), handler)  # binds (an OSError when the port is taken)
        self._reaper = threading.Thread(target=self._reap_forever, daemon=True, name="reaper")
        self._reaper.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def process_request(self, request, client_address) -> None:
        """Queue the connection for a worker; with the queue full, answer 503 at once and close it."""
        request.settimeout(self.editor.limits.request_timeout)
        try:
            self._connections.put_nowait((request, client_address))
        except queue.Full:
            try:
                body = b'{"error": "the editor is busy; try again in a moment"}'
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._pool_lock:
            if self._idle == 0 and len(self._workers) < self.editor.limits.max_workers:
                worker = threading.Thread(target=self._serve_connections, daemon=True,
                                          name=f"http-{len(self._workers)}")
                self._workers.append(worker)
                worker.start()

    def _serve_connections(self) -> None:
        while not self._closing:
            with self._pool_lock:
                self._idle += 1
            try:
                request, client_address = self._connections.get(timeout=0.5)
            except queue.Empty:
                continue
            finally:
                with self._pool_lock:
                    self._idle -= 1
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001 - a broken connection must not end the worker
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)

    def server_close(self) -> None:
        """Stop listening; the workers end within half a second, and queued connections are closed."""
        super().server_close()
        self._closing = True
        while True:
            try:
                request, _ = self._connections.get_nowait()
            except queue.Empty:
                break
            self.shutdown_request(request)

    def _reap_forever(self) -> None:
        interval = max(0.5, min(5.0, self.editor.limits.session_timeout / 4))
        while True:
            time.sleep(interval)
            try:
                self.editor.reap()
            except Exception:  # never let the reaper die
                log.exception("reaping sessions failed")


def allowed_hosts(host: str) -> frozenset[str] | None:
    """The Host names a server listening on `host` answers: the loopback names on a loopback address, that
    address (and the loopback names) on another one, and any (None) on a wildcard address (0.0.0.0, ::)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:  # a name: itself, and the loopback names if it is one of them
        return frozenset({host.lower()}) | (LOOPBACK_NAMES if host.lower() in LOOPBACK_NAMES else frozenset())
    if address.is_unspecified:
        return None
    return LOOPBACK_NAMES if address.is_loopback else frozenset({str(address)}) | LOOPBACK_NAMES
