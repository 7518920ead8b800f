"""The web editor against hostile and broken clients, through real sockets on 127.0.0.1 (each case bounded
in time) and, for memory, in a child process under an address-space cap: half-sent requests, floods,
other sites' pages, DNS rebinding, malformed numbers and files, thousands of points, slow steps, reaping,
huge pictures and archive bombs, SIGTERM."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from draggan.apps.editor.editor import Editor, EditorLimits, GeneratorChoice
from draggan.session import DragSession
from draggan.session_io import save_session
from draggan.settings import DragConfig
from tests.conftest import tiny_generator
from tests.helpers.editor_server import serving
from tests.helpers import hostile_files as hf
from tests.helpers.hostile_files import huge_png, npz_bomb, session_zip
from tests.helpers.hostile_replay import with_arrays
from tests.helpers.memory import run_capped

ROOT = Path(__file__).resolve().parents[2]
GROWTH_MB = 150


def _invert(G, path, callback, on_domain):  # an inversion stand-in: the upload path is what these tests exercise
    from draggan.latents import initial_latent

    return G, initial_latent(G, 1, 0.7)


@pytest.fixture
def server(tmp_path):
    G = tiny_generator(32)
    editor = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=5))], load=lambda s: G,
                    out_dir=tmp_path / "saved", invert=_invert,
                    limits=EditorLimits(max_upload_bytes=200_000, request_timeout=1.0, max_workers=4, max_queued=4,
                                        poll_timeout=5.0))
    with serving(editor) as srv:
        yield srv


def call(srv, path, body=None, *, method=None, headers=None, timeout=10):
    """(status, parsed JSON or raw bytes)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, headers=headers or {},
                                 method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(raw) if ctype.startswith("application/json") else raw)


def raw_request(srv, data: bytes, timeout=5.0) -> bytes:
    with socket.create_connection(srv.server_address[:2], timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def new_tab(srv):
    status, body = call(srv, "/api/session", b"")
    assert status == 200
    return body["sid"]


def test_half_sent_requests_time_out_and_workers_stay_bounded(server):
    threads_before = threading.active_count()
    host, port = server.server_address[:2]
    socks = []
    for _ in range(40):
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        socks.append(s)
    time.sleep(0.3)
    assert threading.active_count() <= threads_before + 4 + 1  # at most max_workers, not a thread per connection
    start = time.monotonic()
    for s in socks:  # each is answered (503 busy, or 408 timed out) or closed within the timeouts
        s.settimeout(8)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        assert data == b"" or data.startswith(b"HTTP/1.1 503") or data.startswith(b"HTTP/1.1 408"), data[:60]
        s.close()
    assert time.monotonic() - start < 6
    assert call(server, "/api/health")[0] == 200  # serving again


def test_requests_for_other_hosts_and_from_other_sites_are_refused(server):
    port = server.server_address[1]
    assert call(server, "/api/config", headers={"Host": "attacker.example"})[0] == 403  # DNS rebinding
    status, body = call(server, "/api/session", b"", headers={"Origin": "http://attacker.example"})
    assert status == 403 and "other sites" in body["error"]
    status, body = call(server, "/api/session", b"", headers={"Origin": "null"})
    assert status == 403
    sid = new_tab(server)
    status, _ = call(server, f"/api/s/{sid}/generate", b'{"seed": 1}',
                     headers={"Origin": "http://evil.example:8080", "Content-Type": "text/plain"})
    assert status == 403
    assert call(server, f"/api/s/{sid}/state")[1]["generator"] is None  # nothing happened
    same = {"Origin": f"http://127.0.0.1:{port}"}
    assert call(server, f"/api/s/{sid}/generate", {"seed": 1}, headers=same)[0] == 200
    assert call(server, "/api/health", headers={"Host": f"localhost:{port}"})[0] == 200  # ssh -L keeps a loopback name


@pytest.mark.parametrize("path, body", [
    ("generate", b'{"seed": 1e400}'),
    ("generate", b'{"seed": 1.5}'),
    ("generate", b'{"seed": true}'),
    ("generate", b'{"seed": 1, "truncation_psi": "x"}'),
    ("generate", b'{"seed": 1, "truncation_psi": NaN}'),
    ("generate", b'{"generator": ["tiny"], "seed": 1}'),
    ("points", b'{"handles": {"a": 1}, "targets": []}'),
    ("undo", b'{"step": "1; drop"}'),
    ("state?since=abc", None),
    ("state?wait=abc", None),
    ("state?wait=nan", None),
    ("preview?step=abc", None),
])
def test_malformed_numbers_are_400_with_a_message(server, path, body):
    sid = new_tab(server)
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    status, err = call(server, f"/api/s/{sid}/{path}", body)
    assert status == 400 and err["error"] and "internal" not in err["error"], (status, err)


def test_seed_is_never_rounded(server):
    sid = new_tab(server)
    status, err = call(server, f"/api/s/{sid}/generate", {"seed": 1.5})
    assert status == 400 and "the seed must be a whole number, got 1.5" in err["error"]
    assert call(server, f"/api/s/{sid}/generate", {"seed": 2.0})[1]["seed"] == 2


def test_bad_lengths_and_files_are_400_and_name_nothing_internal(server):
    sid = new_tab(server)
    answer = raw_request(server, f"POST /api/s/{sid}/points HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Content-Length: -5\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    status, err = call(server, f"/api/s/{sid}/upload", b"just some text", headers={"X-Filename": "notes.txt"})
    assert status == 400 and "not an image" in err["error"]
    assert not re.search(r"0x[0-9a-f]{6,}|object at|BytesIO|<_io", err["error"]), err["error"]
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    status, err = call(server, f"/api/s/{sid}/load", session_zip({"session.json": [1, 2], "latent.npz": b"x"}),
                       headers={"X-Filename": "s.zip"})
    assert status == 400 and "session.json holds a list" in err["error"], err
    G = server.editor.generator(server.editor.choice(None))
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[10, 10]], [[12, 12]],
                          config=DragConfig(feature_block=2))
    session.step()
    folder = save_session(session, Path(server.editor.tmp_root) / "s", generator="tiny")
    meta = json.loads((folder / "session.json").read_text())
    meta["steps"] = 3  # the history holds one step
    status, err = call(server, f"/api/s/{sid}/load", session_zip({"session.json": json.dumps(meta).encode(),
                                                                 "latent.npz": (folder / "latent.npz").read_bytes()}),
                       headers={"X-Filename": "s.zip"})
    assert status == 400 and "a history of 1 entries for 3 steps" in err["error"], err
    assert str(server.editor.tmp_root) not in err["error"]


def test_point_pairs_are_capped(server):
    from draggan.limits import MAX_POINTS

    sid = new_tab(server)
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    assert call(server, "/api/config")[1]["max_points"] == MAX_POINTS
    pts = [[1, 1]] * (MAX_POINTS + 1)
    status, err = call(server, f"/api/s/{sid}/points", {"handles": pts, "targets": pts})
    assert status == 400 and f"at most {MAX_POINTS}" in err["error"]
    start = time.monotonic()
    many = [[1, 1]] * 10_000
    assert call(server, f"/api/s/{sid}/points", {"handles": many, "targets": many})[0] == 400
    assert time.monotonic() - start < 2
    assert call(server, f"/api/s/{sid}/points", {"handles": pts[:MAX_POINTS], "targets": pts[:MAX_POINTS]})[0] == 200


def test_state_and_pause_answer_while_a_long_step_runs(monkeypatch, tmp_path):
    """No lock is held through a drag step: the page's state comes at once; pause returns when the step ends."""
    step = DragSession.step

    def slow_step(self):
        time.sleep(1.5)
        return step(self)

    monkeypatch.setattr(DragSession, "step", slow_step)
    G = tiny_generator(32)
    ed = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=50))], load=lambda s: G,
                out_dir=tmp_path)
    tab = ed.open()
    tab.generate("tiny", 0)
    tab.set_points([[5, 5]], [[25, 25]])
    tab.start()
    time.sleep(0.3)  # the first step is running
    start = time.monotonic()
    st = tab.snapshot()
    assert st["running"] and time.monotonic() - start < 0.3
    start = time.monotonic()
    tab.pause()
    assert time.monotonic() - start < 2.0 and not tab.running
    steps = tab.snapshot()["step"]
    time.sleep(1.8)
    assert tab.snapshot()["step"] == steps  # no step after pause returned
    ed.shutdown()


def test_a_tab_with_a_request_in_flight_is_not_reaped(server):
    server.editor.limits.session_timeout = 0.5
    sid = new_tab(server)
    version = call(server, f"/api/s/{sid}/generate", {"seed": 0})[1]["version"]
    result = {}
    poll = threading.Thread(target=lambda: result.update(
        answer=call(server, f"/api/s/{sid}/state?since={version}&wait=3")))
    poll.start()
    time.sleep(1.5)  # three times the session timeout, waiting in the long poll
    assert server.editor.reap() == 0 and sid in server.editor.sessions
    poll.join(10)
    assert result["answer"][0] == 200
    time.sleep(1.0)  # silent now: reaped
    server.editor.reap()
    assert sid not in server.editor.sessions


# ---------------------------------------------------------------- memory, under a cap

EDITOR_CHILD = """
import numpy as np
from draggan.apps.editor.editor import Editor, EditorLimits, GeneratorChoice
from draggan.settings import DragConfig
from tests.conftest import tiny_generator
G = tiny_generator(32)
def invert(G, path, callback, on_domain):
    raise AssertionError("never reached")
ed = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2))], load=lambda s: G, invert=invert,
            limits=EditorLimits(max_upload_bytes=20 << 20))
tab = ed.open()
tab.generate("tiny", 0)
tab.set_mask(None)
import draggan.checkpoint, tempfile, os
with tempfile.TemporaryDirectory() as d:  # PyTorch loads its meta-device code once (150 MB)
    draggan.checkpoint.load_generator_file(draggan.checkpoint.save_generator(G, os.path.join(d, "w.safetensors")))
"""


def test_huge_pictures_and_archive_bombs_are_refused_before_allocating(tmp_path):
    G = tiny_generator(32)
    png = huge_png(10_000, 10_000)  # 100 M pixels in ~100 KB
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[10, 10]], [[12, 12]],
                          config=DragConfig(feature_block=2))
    session.step()
    folder = save_session(session, tmp_path / "s", generator="tiny")
    meta = (folder / "session.json").read_bytes()
    arrays = dict(np.load(folder / "latent.npz"))
    bomb = npz_bomb({k: v for k, v in arrays.items() if k != "ws0"}, "ws0", 2**27)  # 512 MB of zeros, read by any load
    kw = json.loads(json.dumps(G.init_kwargs))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(tmp_path / "g.safetensors"),
              metadata={"format": "draggan-generator", "version": "1",
                        "init_kwargs": json.dumps({**kw, "img_resolution": 2**20,
                                                   "synthesis_kwargs": {**kw["synthesis_kwargs"], "channel_base": 2**30}})})
    tuned_meta = json.loads(meta)
    tuned_meta["generator"] = "generator.safetensors"
    files = {"png": tmp_path / "huge.png", "npz": tmp_path / "bomb.zip", "gen": tmp_path / "gen.zip"}
    files["png"].write_bytes(png)
    files["npz"].write_bytes(session_zip({"session.json": meta, "latent.npz": bomb}))
    files["gen"].write_bytes(session_zip({"session.json": json.dumps(tuned_meta).encode(),
                                          "latent.npz": (folder / "latent.npz").read_bytes(),
                                          "generator.safetensors": (tmp_path / "g.safetensors").read_bytes()}))
    results = run_capped(f"""
        png = open({str(files['png'])!r}, "rb").read()
        attempt("mask 10000x10000", lambda: tab.set_mask(png))
        attempt("photo 10000x10000", lambda: tab.upload(png, "huge.png"))
        attempt("latent.npz inflating to 512 MB", lambda: tab.load({{"s.zip": open({str(files['npz'])!r}, "rb").read()}}))
        attempt("generator.safetensors of 2^20 px", lambda: tab.load({{"s.zip": open({str(files['gen'])!r}, "rb").read()}}))
        from inversion.images import load_image
        attempt("load_image of 10000x10000", lambda: load_image({str(files['png'])!r}, 32))
    """, imports=EDITOR_CHILD, headroom_mb=1500)
    for label, r in results.items():
        assert r["error"] in ("EditorError", "ImageError"), (label, r)
        assert r["growth_mb"] < GROWTH_MB, (label, r)
    assert "10000x10000" in results["mask 10000x10000"]["message"]
    assert "at most 64 million" in results["photo 10000x10000"]["message"]
    assert "latent.npz unpacks to 53687" in results["latent.npz inflating to 512 MB"]["message"]  # by its directory
    assert "img_resolution=1048576" in results["generator.safetensors of 2^20 px"]["message"]


def test_sigterm_removes_the_temporary_folders(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "scripts/app.py", "port=0", "inversion=mse", "threads=1",
                             f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = None, time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"editor on (http://\S+/)", line)
            url = m and m[1]
        assert url, "the editor did not start"
        sid = json.loads(urllib.request.urlopen(urllib.request.Request(url + "api/session", data=b""), timeout=30)
                         .read())["sid"]
        photo = io.BytesIO()
        Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(photo, format="PNG")
        urllib.request.urlopen(urllib.request.Request(url + f"api/s/{sid}/upload", data=photo.getvalue(),
                                                      headers={"X-Filename": "private.png"}), timeout=30).read()
        left = [p for p in tmp_path.iterdir() if p.name.startswith("draggan-app-")]
        assert left and any(p.name == "upload" for p in left[0].rglob("*"))  # the uploaded photo is there
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("draggan-app-")]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- round 2 (issue 26)

@pytest.mark.parametrize("body, message", [
    (b'{"handles": [[1' + b"0" * 400 + b', 1]], "targets": [[1, 1]]}', "got a 401-digit integer"),
    (b'{"handles": [[' + b"7" * 5000 + b', 1]], "targets": [[1, 1]]}', "Exceeds the limit"),
    (b'{"handles": ' + b"[" * 100_000 + b"]" * 100_000 + b', "targets": []}', "100001 levels deep"),
    (b'{"handles": [[true, 1]], "targets": [[1, 1]]}', "must hold two finite numbers"),
    (b'{"handles": [[1, 2, 3]], "targets": [[1, 1]]}', r"must be an \[x, y\] pair"),
])
def test_hostile_numbers_and_nesting_in_points_are_one_line_400s(server, body, message):
    sid = new_tab(server)
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    start = time.monotonic()
    status, err = call(server, f"/api/s/{sid}/points", body)
    assert status == 400 and re.search(message, err["error"]) and "\n" not in err["error"], (status, err)
    assert time.monotonic() - start < 5
    assert call(server, f"/api/s/{sid}/points", {"handles": [[1, 1]], "targets": [[2, 2]]})[0] == 200  # still serving
    for query in ("since=" + "9" * 400, "wait=" + "9" * 5000):  # query numbers: bounded too
        assert call(server, f"/api/s/{sid}/state?{query}")[0] == 400


def _session_upload(G, tmp_path) -> dict[str, bytes]:
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[10, 10]], [[12, 12]],
                          config=DragConfig(feature_block=2))
    session.step()
    session.step()
    folder = save_session(session, tmp_path / "upload", generator="tiny")
    return {"session.json": (folder / "session.json").read_bytes(), "latent.npz": (folder / "latent.npz").read_bytes()}


def _with_meta(meta: bytes, change) -> bytes:
    m = json.loads(meta)
    change(m)
    return json.dumps(m).encode()


@pytest.mark.parametrize("label, make, message", [
    ("history loss 'x'", lambda f: {"session.json": _with_meta(f["session.json"], lambda m: m["history"][1].update(
        loss="x"))}, r"history\[1\].loss = 'x'"),
    ("NaN ws0", lambda f: {"latent.npz": with_arrays(f["latent.npz"], lambda a: a["ws0"].fill(np.nan))},
     "array ws0 holds NaN"),
    ("Inf step latent", lambda f: {"latent.npz": with_arrays(f["latent.npz"], lambda a: a["step1_free"].fill(np.inf))},
     "array step1_free holds NaN or infinite"),
    ("NaN Adam state", lambda f: {"latent.npz": with_arrays(f["latent.npz"], lambda a: a["step1_adam_exp_avg"].fill(
        np.nan))}, "array step1_adam_exp_avg holds NaN"),
    ("handles at 1e30", lambda f: {"session.json": _with_meta(f["session.json"], lambda m: m.update(
        handles=[[1e30, 1e30]]))}, "handles outside the 32x32 image"),
    ("|V1073741824", lambda f: {"latent.npz": hf.npz_of({"ws0": hf.npy_member("|V1073741824", (1,))})},
     r"array ws0 is \|V1073741824"),
])
def test_a_session_that_the_project_never_writes_is_refused_when_it_is_loaded(server, tmp_path, label, make, message):
    """Refused by the upload itself (a 400 naming the value), not later when the edit starts or the page polls."""
    G = server.editor.generator(server.editor.choice(None))
    files = _session_upload(G, tmp_path)
    sid = new_tab(server)
    status, err = call(server, f"/api/s/{sid}/load", session_zip({**files, **make(files)}),
                       headers={"X-Filename": "s.zip"})
    assert status == 400 and re.search(message, err["error"]) and "\n" not in err["error"], (label, status, err)
    assert call(server, f"/api/s/{sid}/state")[1]["status"] == "empty"
    status, state = call(server, f"/api/s/{sid}/load", session_zip(files), headers={"X-Filename": "s.zip"})
    assert status == 200 and state["step"] == 2  # the same session, unaltered, loads


def test_multipart_bodies_of_many_tiny_parts_are_answered_at_once(server):
    sid = new_tab(server)
    body = b"--x\r\n\r\n\r\n" * ((10 << 20) // 11) + b"--x--\r\n"
    server.editor.limits.max_session_bytes = 20 << 20
    start = time.monotonic()
    status, err = call(server, f"/api/s/{sid}/load", body, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert status == 400 and "more than 8 parts" in err["error"] and time.monotonic() - start < 5


def test_multipart_files_are_found_by_their_boundary():
    from draggan.apps.editor.errors import EditorError
    from draggan.apps.editor.multipart import multipart_files

    body = (b"--b0\r\nContent-Disposition: form-data; name=\"files\"; filename=\"session.json\"\r\n"
            b"Content-Type: application/json\r\n\r\n{\"a\": 1}\r\n--b0\r\nContent-Disposition: form-data; "
            b"name=\"note\"\r\n\r\nnot a file\r\n--b0\r\nContent-Disposition: form-data; name=files; "
            b"filename=latent.npz\r\n\r\n\r\n-b0\x00\xff\r\n--b0--\r\n")
    files = multipart_files(body, 'multipart/form-data; boundary="b0"')
    assert files == {"session.json": b'{"a": 1}', "latent.npz": b"\r\n-b0\x00\xff"}
    for bad, message in [(b"--b0\r\nno end of headers", "no end to its headers"),
                         (b"--b0\r\nX: y\r\n\r\ncut", "cut short"), (b"nothing", "holds no part")]:
        with pytest.raises(EditorError, match=message):
            multipart_files(bad, "multipart/form-data; boundary=b0")


def _invert_reading_the_photo(G, path, callback, on_domain):  # the inversion's first step: reading the photo
    from inversion.images import load_image

    load_image(path, G.img_resolution)
    raise AssertionError("the photo was expected to be refused")


def test_no_message_names_a_temporary_path_of_the_server(server):
    """A photo too small to invert, a corrupt tuned generator: the messages name the file, not where it lies."""
    server.editor.invert = _invert_reading_the_photo
    sid = new_tab(server)
    small = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(small, format="PNG")
    call(server, f"/api/s/{sid}/generate", {"seed": 0})
    status, _ = call(server, f"/api/s/{sid}/upload", small.getvalue(), headers={"X-Filename": "tiny.png"})
    messages = []
    for _ in range(100):
        state = call(server, f"/api/s/{sid}/state?since=-1")[1]
        if state["status"] != "inverting":
            break
        time.sleep(0.05)
    messages.append(state["message"])
    G = server.editor.generator(server.editor.choice(None))
    status, err = call(server, f"/api/s/{sid}/load", session_zip(
        {**_session_upload(G, Path(server.editor.tmp_root)), "generator.safetensors": b"not a safetensors file"}),
        headers={"X-Filename": "s.zip"})
    messages.append(err["error"])
    root = str(server.editor.tmp_root)
    assert "could not invert" in messages[0] and "upload is 4x4 pixels" in messages[0], messages
    assert "generator.safetensors: not a network pickle" in messages[1], messages
    assert not any(root in m or "/tmp" in m or "draggan-app-" in m for m in messages), messages
    assert server.editor.redact(f"{root}/tab-abc/load-x/latent.npz is bad; {root}/tab-abc") == \
        "latent.npz is bad; the server's temporary folder"


def test_hostile_uploads_cost_little_memory_in_the_editor(tmp_path):
    """The editor's rows at full size, in a child capped at 1.5 GB above its imports: three sessions whose
    latent.npz declares 1 GB items, a zip of 600,000 directory entries, 64 MB of `[],` as session.json."""
    G = tiny_generator(32)
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[10, 10]], [[12, 12]],
                          config=DragConfig(feature_block=2))
    session.step()
    folder = save_session(session, tmp_path / "s", generator="tiny")
    meta = (folder / "session.json").read_bytes()
    files = {"V-item npz": session_zip({"session.json": meta, "latent.npz": hf.npz_of(
        {"ws0": hf.npy_member("|V1073741824", (1,))})}), "600,000 entries": hf.zip_with_lying_directory(),
        "64 MB of [],": session_zip({"session.json": hf.json_of_empty_lists(64 << 20),
                                     "latent.npz": (folder / "latent.npz").read_bytes()})}
    paths = {k: str(tmp_path / f"{i}.zip") for i, k in enumerate(files)}
    for k, data in files.items():
        Path(paths[k]).write_bytes(data)
    results = run_capped(f"""
        p = {paths!r}
        tabs = [ed.open() for _ in range(3)]
        for t in tabs:
            t.generate("tiny", 0)
        attempt("V-item npz x3", lambda: [t.load({{"s.zip": open(p["V-item npz"], "rb").read()}}) for t in tabs])
        attempt("600,000 entries", lambda: tab.load({{"s.zip": open(p["600,000 entries"], "rb").read()}}))
        attempt("64 MB of [],", lambda: tab.load({{"s.zip": open(p["64 MB of [],"], "rb").read()}}))
    """, imports=EDITOR_CHILD, headroom_mb=1500)
    for label, r in results.items():
        assert r["error"] == "EditorError" and "\n" not in r["message"], (label, r)
        assert r["growth_mb"] < GROWTH_MB, (label, r)
