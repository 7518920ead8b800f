"""Downloads against a real HTTP server on 127.0.0.1: checksums, broken transfers, resuming."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from draggan import DownloadError, load_generator, save_generator
from draggan.download import download_file
from draggan.loading import resolve_checkpoint
from draggan.registry import MODELS
from tests.conftest import tiny_generator

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    cut_after: int | None = None  # close the connection after this many bytes of the body
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.headers.get("Range") or "")
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.cut_after is not None:
            self.wfile.write(body[: self.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.files = {"/model.bin": PAYLOAD}
    _Handler.cut_after = None
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
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
    url, handler = server
    G = tiny_generator(16)
    save_generator(G, tmp_path / "src.safetensors")
    handler.files["/gen.safetensors"] = (tmp_path / "src.safetensors").read_bytes()
    H = load_generator(url + "/gen.safetensors", device="cpu", cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / "gen.safetensors").is_file()
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
