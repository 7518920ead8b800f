"""HTTP servers on 127.0.0.1 that serve checkpoints the way real and hostile hosts do: validators (ETag,
Last-Modified) honoured through If-Range, files that change between requests, cuts, HTML pages, lying or
endless lengths. For the download tests and the hostile replay."""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field


@dataclass
class ChangingFile:
    """What the server answers for one path (replace it in `Site.files` to change the file)."""

    data: bytes
    etag: str | None = None  # a strong ETag ('"v1"'); None = none sent
    last_modified: str | None = None  # an HTTP date; None = none sent
    content_type: str = "application/octet-stream"
    cut_after: int | None = None  # close the connection after this many bytes of the body
    claimed_length: int | None = None  # a Content-Length other than the data's
    endless: bool = False  # a body of zeros that never ends (chunked unless claimed_length is set), up to 512 MB
    honour_if_range: bool = True  # False: a server that ignores If-Range (sends the range of the new file)


@dataclass
class Site:
    url: str
    files: dict[str, ChangingFile]
    requests: list[dict] = field(default_factory=list)  # the headers of every request received
    sent: int = 0  # body bytes sent, all requests together
    httpd: http.server.ThreadingHTTPServer | None = None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(files: dict[str, ChangingFile]) -> Site:
    """A threaded server of `files` (path -> ChangingFile) on a free loopback port; `site.close()` stops it."""
    site = Site("", dict(files))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - the base class's name
            site.requests.append(dict(self.headers))
            f = site.files.get(self.path)
            if f is None:
                self.send_error(404)
                return
            validator = f.etag or f.last_modified
            rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
            start = 0
            if rng and rng.startswith("bytes=") and not f.endless:
                if if_range is None or not f.honour_if_range or (validator is not None and if_range == validator):
                    start = int(rng[6:].split("-")[0])
            if start:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", f.content_type)
            if f.etag:
                self.send_header("ETag", f.etag)
            if f.last_modified:
                self.send_header("Last-Modified", f.last_modified)
            body = f.data[start:]
            if f.endless:
                chunked = f.claimed_length is None
                self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(f.claimed_length))))
                self.end_headers()
                chunk = b"\0" * (1 << 20)
                try:
                    for _ in range(512):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                        site.sent += len(chunk)
                except OSError:
                    pass
                self.close_connection = True
                return
            self.send_header("Content-Length", str(f.claimed_length if f.claimed_length is not None else len(body)))
            self.end_headers()
            try:
                self.wfile.write(body if f.cut_after is None else body[: f.cut_after])
                self.wfile.flush()
                site.sent += len(body) if f.cut_after is None else min(len(body), f.cut_after)
            except OSError:
                return
            if f.cut_after is not None or f.claimed_length is not None:
                self.close_connection = True

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    site.url, site.httpd = f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    return site
