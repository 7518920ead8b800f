"""Downloads against real HTTP servers on 127.0.0.1: checksums, broken transfers, resuming, and servers
that lie (no length, wrong ranges, stale parts, garbage headers, redirects to other hosts, drips),
each bounded in time."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time

import pytest

from draggan import DownloadError, load_generator, save_generator
from draggan.apps.commands import download_models
from draggan.download import download_file
from draggan.loading import resolve_checkpoint
from draggan.registry import MODELS
from tests.conftest import tiny_generator

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    etag = '"v1"'  # the version of every file served; If-Range honoured against it
    files: dict[str, bytes] = {}
    cut_after: int | None = None  # close the connection after this many bytes of the body
    requests: list[str] = []
    special = None  # a function (handler) -> bool that answers instead, when it returns True

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.headers.get("Range") or "")
        if type(self).special is not None and type(self).special(self):
            self.close_connection = True
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        if rng and rng.startswith("bytes=") and if_range in (None, self.etag):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("ETag", self.etag)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(body[: self.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def _serve(handler):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


@pytest.fixture
def server():
    _Handler.files = {"/model.bin": PAYLOAD}
    _Handler.cut_after = None
    _Handler.requests = []
    _Handler.special = None
    httpd = _serve(_Handler)
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()


def test_right_checksum(server, tmp_path):
    url, _ = server
    dest = download_file(url + "/model.bin", tmp_path / "m.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                         progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="expected 0000"):
        download_file(url + "/model.bin", tmp_path / "m.bin", sha256="0000" * 16, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_server_closing_mid_file_then_resume(server, tmp_path):
    url, handler = server
    handler.cut_after = 300_000
    with pytest.raises(DownloadError, match="broke off") as err:
        download_file(url + "/model.bin", tmp_path / "m.bin", progress=False)
    assert str(tmp_path / "m.bin") in str(err.value)
    assert not (tmp_path / "m.bin").exists()
    assert (tmp_path / "m.bin.part").stat().st_size == 300_000
    handler.cut_after = None
    dest = download_file(url + "/model.bin", tmp_path / "m.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest(),
                         progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert handler.requests[-1] == "bytes=300000-"  # resumed, not restarted
    assert not (tmp_path / "m.bin.part").exists()


def test_unreachable_host_names_the_file_and_where_to_put_it(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(DownloadError, match="by hand and put it at") as err:
        download_file(f"http://127.0.0.1:{port}/x.pkl", tmp_path / "x.pkl", progress=False, timeout=5)
    assert str(tmp_path / "x.pkl") in str(err.value)


def test_http_404_is_a_download_error(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(url + "/missing.pkl", tmp_path / "missing.pkl", progress=False)


def test_load_generator_from_url(server, tmp_path):
    from draggan.download import url_cache_path

    url, handler = server
    G = tiny_generator(16)
    save_generator(G, tmp_path / "src.safetensors")
    handler.files["/gen.safetensors"] = (tmp_path / "src.safetensors").read_bytes()
    H = load_generator(url + "/gen.safetensors", device="cpu", cache_dir=tmp_path / "cache")
    assert url_cache_path(url + "/gen.safetensors", tmp_path / "cache").is_file()
    ws = G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None)
    assert (G.synthesis(ws) - H.synthesis(ws)).abs().max() == 0


def test_registered_model_missing_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(DownloadError, match="put it at") as err:
        resolve_checkpoint("stylegan2-ffhq-512", cache_dir=tmp_path, download=False)
    assert str(tmp_path / "stylegan2-ffhq-512x512.pkl") in str(err.value)
    with pytest.raises(DownloadError, match="StyleGAN-Human"):
        resolve_checkpoint("stylegan-human-512x256", cache_dir=tmp_path)


def test_registry_table_is_complete():
    official = [m for m in MODELS.values() if not m.shipped]
    assert len(official) == 9  # the eight of DragGAN's download list, and StyleGAN-Human
    for m in official:
        assert m.filename and m.license and len(m.resolution) == 2
        assert m.url or m.note


# ---------------------------------------------------------------- servers that break or lie


def _send(handler, status, body=b"", headers=None, *, length=True):
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()
    return True


def test_no_length_and_a_cut_never_installs_the_half_file(server, tmp_path):
    url, handler = server
    handler.special = lambda h: _send(h, 200, PAYLOAD[: len(PAYLOAD) // 2], length=False)  # then closes
    with pytest.raises(DownloadError, match="no length"):
        download_file(url + "/model.bin", tmp_path / "g.bin", progress=False)
    assert not (tmp_path / "g.bin").exists()
    with pytest.raises(DownloadError, match="no length"):  # the next load does not take it either
        resolve_checkpoint(url + "/model.bin", cache_dir=tmp_path / "cache")
    with pytest.raises(DownloadError, match=r"broke off: 524288 of 1048576 bytes"):  # a registered size proves the cut
        download_file(url + "/model.bin", tmp_path / "h.bin", size=len(PAYLOAD), progress=False)
    assert not (tmp_path / "h.bin").exists()
    handler.special = None
    assert download_file(url + "/model.bin", tmp_path / "h.bin", size=len(PAYLOAD), progress=False).read_bytes() == PAYLOAD


def test_concurrent_downloads_of_one_file_are_serialised(server, tmp_path):
    url, handler = server
    big = bytes(range(256)) * 32768  # 8 MiB

    def slow(h):
        if h.path != "/big.bin":
            return False
        start = int(h.headers["Range"][6:].split("-")[0]) if h.headers.get("Range") else 0
        body = big[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(big) - 1}/{len(big)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(0, len(body), 1 << 18):
            h.wfile.write(body[i:i + (1 << 18)])
            time.sleep(0.01)
        return True

    handler.special = slow
    results, errors = [], []

    def fetch():
        try:
            results.append(download_file(url + "/big.bin", tmp_path / "big.bin", progress=False))
        except Exception as e:  # noqa: BLE001 - the test reports it
            errors.append(e)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 3
    assert hashlib.sha256((tmp_path / "big.bin").read_bytes()).hexdigest() == hashlib.sha256(big).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]  # no .part, no .lock left
    assert handler.requests.count("") == 1  # one download; the others found it installed


def _interrupted(tmp_path, data: bytes, name: str = "m.bin", validator: str = '"v1"') -> None:
    """What an interrupted download leaves: the part, and the version of the file it began (If-Range)."""
    (tmp_path / f"{name}.part").write_bytes(data)
    (tmp_path / f"{name}.part.json").write_text(json.dumps({"url": "", "if_range": validator, "length": None}))


@pytest.mark.parametrize("answer", ["206 from byte 0", "416 of another length"])
def test_a_part_the_server_does_not_continue_is_discarded(server, tmp_path, answer):
    url, handler = server
    _interrupted(tmp_path, b"x" * 1000)  # stale: not the start of this file

    def lie(h):
        if not h.headers.get("Range"):
            return False
        if answer == "206 from byte 0":
            return _send(h, 206, PAYLOAD, {"Content-Range": f"bytes 0-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"})
        return _send(h, 416, b"", {"Content-Range": "bytes */500"})

    handler.special = lie
    dest = download_file(url + "/model.bin", tmp_path / "m.bin", progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert handler.requests == ["bytes=1000-", ""]  # tried to resume, then started over


def test_a_complete_part_answered_416_with_its_length_is_installed(server, tmp_path):
    url, handler = server
    _interrupted(tmp_path, PAYLOAD)
    handler.special = lambda h: _send(h, 416, b"", {"Content-Range": f"bytes */{len(PAYLOAD)}"})
    assert download_file(url + "/model.bin", tmp_path / "m.bin", sha256=SHA, progress=False).read_bytes() == PAYLOAD


def test_the_cache_key_includes_the_url(server, tmp_path):
    url, handler = server
    G, H = tiny_generator(16, seed=1), tiny_generator(16, seed=2)
    for name, gen in (("/other/model.safetensors", G), ("/ok/model.safetensors", H)):
        handler.files[name] = save_generator(gen, tmp_path / "src.safetensors").read_bytes()
    a = resolve_checkpoint(url + "/other/model.safetensors", cache_dir=tmp_path / "cache")
    b = resolve_checkpoint(url + "/ok/model.safetensors", cache_dir=tmp_path / "cache")
    assert a != b and a.name == b.name == "model.safetensors"
    assert b.read_bytes() == handler.files["/ok/model.safetensors"]


def test_a_dripping_server_is_cut_off(server, tmp_path):
    url, handler = server

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(PAYLOAD)))
        h.end_headers()
        for b in PAYLOAD[:100]:
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.1)
        return True

    handler.special = drip
    start = time.monotonic()
    with pytest.raises(DownloadError, match="too slow"):
        download_file(url + "/model.bin", tmp_path / "m.bin", min_rate=100, rate_window=1.0, progress=False)
    assert time.monotonic() - start < 5
    with pytest.raises(DownloadError, match="took too long"):
        download_file(url + "/model.bin", tmp_path / "n.bin", max_seconds=1.0, min_rate=0, progress=False)
    assert time.monotonic() - start < 10 and not (tmp_path / "m.bin").exists()


def test_redirects_to_another_host_only_with_a_known_checksum(server, tmp_path):
    url, handler = server
    port = url.rsplit(":", 1)[1]
    other = f"http://localhost:{port}/model.bin"  # same server, another host name
    handler.special = lambda h: h.path == "/moved.bin" and _send(h, 302, b"", {"Location": other})
    with pytest.raises(DownloadError, match="another host"):
        download_file(url + "/moved.bin", tmp_path / "m.bin", progress=False)
    assert not (tmp_path / "m.bin").exists()
    assert download_file(url + "/moved.bin", tmp_path / "m.bin", sha256=SHA, progress=False).read_bytes() == PAYLOAD
    handler.special = lambda h: h.path == "/same.bin" and _send(h, 302, b"", {"Location": "/model.bin"})
    assert download_file(url + "/same.bin", tmp_path / "s.bin", progress=False).read_bytes() == PAYLOAD


def test_a_garbage_content_length_is_a_clear_error(server, tmp_path):
    url, handler = server
    handler.special = lambda h: _send(h, 200, PAYLOAD[:100], {"Content-Length": "abc"}, length=False)
    with pytest.raises(DownloadError, match="Content-Length: 'abc', not a byte count"):
        download_file(url + "/model.bin", tmp_path / "m.bin", progress=False)


def test_registry_entries_carry_the_official_checksums():
    for m in MODELS.values():
        if m.shipped:
            continue
        assert m.sha256 is not None and len(m.sha256) == 64 and int(m.sha256, 16) >= 0, m.name
        assert m.checksum_source, m.name
        assert m.size is not None or "not registered" in m.checksum_source, m.name


def test_garbage_in_the_cache_is_not_the_model(tmp_path):
    info = MODELS["stylegan2-lions-512"]
    (tmp_path / info.filename).write_bytes(b"\0" * 1000)
    with pytest.raises(DownloadError, match="is 1000 bytes, expected 363965313"):
        download_models(["stylegan2-lions-512"], cache_dir=tmp_path)
    with pytest.raises(DownloadError, match="delete it and download again"):
        load_generator("stylegan2-lions-512", device="cpu", cache_dir=tmp_path)


# ---------------------------------------------------------------- round 2 (issue 26): versions, HTML, sizes, names

def _changing(**files):
    from tests.helpers.hostile_servers import serve

    return serve({f"/{k}": v for k, v in files.items()})


@pytest.mark.parametrize("validator", ["etag", "last_modified"])
def test_a_part_resumed_after_the_file_changed_is_never_spliced(tmp_path, validator):
    """The server's file changes between a cut and the resume: If-Range makes it send the whole new file."""
    from tests.helpers.hostile_servers import ChangingFile

    old, new = bytes(range(256)) * 4096, bytes(range(255, -1, -1)) * 4096
    v1, v2 = ({"etag": '"v1"'}, {"etag": '"v2"'}) if validator == "etag" else (
        {"last_modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, {"last_modified": "Tue, 02 Jan 2024 00:00:00 GMT"})
    site = _changing(**{"m.pkl": ChangingFile(old, cut_after=300_000, **v1)})
    try:
        with pytest.raises(DownloadError, match="run it again to resume"):
            download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False)
        assert (tmp_path / "m.pkl.part").stat().st_size == 300_000  # kept: the server named its version
        site.files["/m.pkl"] = ChangingFile(new, **v2)
        assert download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False).read_bytes() == new
        resumed = site.requests[-1]
        assert resumed["Range"] == "bytes=300000-" and resumed["If-Range"] == next(iter(v1.values()))
        site.files["/m.pkl"] = ChangingFile(old, cut_after=300_000, **v1)  # unchanged between cut and resume: 206
        (tmp_path / "m.pkl").unlink()
        with pytest.raises(DownloadError):
            download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False)
        site.files["/m.pkl"] = ChangingFile(old, **v1)
        assert download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False).read_bytes() == old
        assert site.requests[-1]["Range"] == "bytes=300000-"
    finally:
        site.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pkl"]


def test_a_part_without_a_version_is_removed_not_resumed(tmp_path):
    """A server that names no version (no ETag, no Last-Modified): the cut part cannot be told from another
    file's, so it is removed; a stray part without its record is never resumed either."""
    from tests.helpers.hostile_servers import ChangingFile

    site = _changing(**{"m.pkl": ChangingFile(PAYLOAD, cut_after=300_000)})
    try:
        with pytest.raises(DownloadError, match="cannot be resumed safely and was removed"):
            download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False)
        assert list(tmp_path.iterdir()) == []
        (tmp_path / "m.pkl.part").write_bytes(b"y" * 1000)  # left by an older version of this code
        site.files["/m.pkl"] = ChangingFile(PAYLOAD)
        assert download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False).read_bytes() == PAYLOAD
        assert "Range" not in site.requests[-1]
    finally:
        site.close()


@pytest.mark.parametrize("url", ["file:///tmp/model.pkl", "ftp://example.org/model.pkl", "model.pkl"])
def test_a_url_that_is_not_http_is_refused_in_one_line(tmp_path, url):
    """A file URL once failed as 'HTTP None' (urllib opens it, with no status)."""
    with pytest.raises(DownloadError, match=r"only http and https URLs are downloaded; a file that is already on "
                                            r"this machine is copied by hand to .*x\.pkl$"):
        download_file(url, tmp_path / "x.pkl", progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("path", ["/models/..", "/models/.", "/models/", "/models/%2e%2e", "/"])
def test_a_url_naming_a_folder_is_refused_before_any_request(tmp_path, path):
    site = _changing()
    try:
        with pytest.raises(DownloadError, match="names a folder, not a file"):
            resolve_checkpoint(site.url + path, cache_dir=tmp_path / "cache")
        with pytest.raises(DownloadError, match="names a folder, not a file"):
            download_file(site.url + path, tmp_path / "x.pkl", progress=False)
        assert site.requests == [] and not [p for p in tmp_path.rglob("*") if p.is_file()]
    finally:
        site.close()


def test_an_html_answer_is_never_installed(tmp_path):
    from tests.helpers.hostile_servers import ChangingFile

    site = _changing(**{"m.pkl": ChangingFile(b"<html>Sign in</html>", content_type="text/html; charset=utf-8",
                                               etag='"v1"')})
    try:
        with pytest.raises(DownloadError, match=r"answered with an HTML page \(text/html\)"):
            resolve_checkpoint(site.url + "/m.pkl", cache_dir=tmp_path)
    finally:
        site.close()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no file, no .part, no record


@pytest.mark.parametrize("kind", ["Content-Length of 10 TB", "endless chunked", "more than registered"])
def test_a_download_never_grows_past_its_cap(tmp_path, kind):
    """Capped by the registered size, else max_bytes (MAX_DOWNLOAD_BYTES by default): a larger Content-Length is
    refused before the body, a chunked body is cut at the cap; the part is removed."""
    from draggan.limits import MAX_DOWNLOAD_BYTES
    from tests.helpers.hostile_servers import ChangingFile

    endless = ChangingFile(b"", endless=True, claimed_length=10 << 40 if kind.startswith("Content") else None)
    site = _changing(**{"m.pkl": endless})
    cap = {"max_bytes": 8 << 20} if kind == "endless chunked" else {"size": 4 << 20} if kind.startswith("more") else {}
    start = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="at most|the most accepted|the registry says"):
            download_file(site.url + "/m.pkl", tmp_path / "m.pkl", progress=False, timeout=5, **cap)
    finally:
        site.close()
    limit = cap.get("max_bytes", cap.get("size", 0))
    assert site.sent <= limit + (16 << 20) and time.monotonic() - start < 30
    assert list(tmp_path.iterdir()) == []
    assert MAX_DOWNLOAD_BYTES < 10 << 40
