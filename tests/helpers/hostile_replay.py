"""Replay of the hostile inputs of issue 26 (sixteen rows and the unclear items), each measured.

A row holds when the input is refused in one line (the library: an error of the project's own types; the
editor: a 4xx with a one-line message), the memory of the process that read it grew by less than
`GROWTH_LIMIT_MB` (the kernel's high-water mark, reset before the row), it finished within its time limit,
and, for the editor's rows, the server answered a normal request afterwards.

- Library rows run each in a fresh child process (`python -m tests.helpers.hostile_replay child KEY DIR`),
  capped in address space at its size after the imports plus `CAP_MB` (a row that would take more fails
  under the cap instead of taking the machine), which prints its own measurement as one JSON line.
- Editor rows run against a live editor (`scripts/app.py port=0`, the embedded model) on 127.0.0.1: its
  memory is read from /proc/<pid>/status (VmHWM reset through /proc/<pid>/clear_refs before each row); a
  server that died is restarted for the next row.
- Download rows run in a child against HTTP servers on 127.0.0.1 started in that child.

`scripts/hostile_replay.py` prints the table; `tests/test_hostile_replay.py` runs a fast subset.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GROWTH_LIMIT_MB = 300
CAP_MB = 2048  # address space a library row may take above its size after the imports
OWN_ERRORS = ("draggan", "inversion")  # an error "of the project's own types" is defined in these packages


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    where: str  # 'library', 'editor' or 'download'
    owner: str = ""  # 'lead' for the rows the lead fixes (not in this branch)
    seconds: float = 20.0  # time limit


CASES = [
    Case("1", "pickle whose memo index is 2^26 (7 bytes)", "library"),
    Case("2", "pickle holding a 10^6-deep tuple as a dict key", "library"),
    Case("3a", "pickle with a numpy scalar of dtype object from raw bytes", "library"),
    Case("3b", "TF pickle whose dlatent_avg is an object ndarray made from raw bytes", "library"),
    Case("4", "TF pickle whose dlatent_avg is an object ndarray of 2^27 elements", "library"),
    Case("5", "TF pickle whose dlatent_avg is a stride-0 view of 2^28 floats", "library"),
    Case("6", "pickled tensor whose torch zip record is a deflated 1 GB entry", "library"),
    Case("7a", "npz member of dtype |V1073741824, shape (1,)", "library"),
    Case("7b", "npz member of dtype <U268435456, shape (1,)", "library"),
    Case("7c", "editor: session upload whose latent.npz declares |V1073741824 (x3 at once)", "editor"),
    Case("8", "editor: session zip whose central directory lists 600,000 entries (end record: 1)", "editor"),
    Case("9a", "session.json of 64 MB of `[],` (load_session)", "library"),
    Case("9b", "editor: session zip holding 64 MB of `[],` as session.json", "editor"),
    Case("10", "editor: session of method uclt whose method_options.weights is a server path", "editor", "lead"),
    Case("11", "editor: session whose history holds the loss \"x\"", "editor"),
    Case("12a", "editor: session whose ws0 holds NaN", "editor"),
    Case("12b", "editor: session whose step latent holds Inf", "editor"),
    Case("13a", "editor: /points with the integer 10^400", "editor"),
    Case("13b", "editor: /points with a 5,000-digit integer", "editor"),
    Case("13c", "editor: /points with lists nested 100,000 deep", "editor"),
    Case("14", "editor: session with r2=4096 and min_radius=4096, then Start", "editor", "lead", seconds=60.0),
    Case("15", "download cut, resumed after the server's file changed", "download"),
    Case("16", "checkpoint URL ending in /..", "download"),
    Case("U1a", "safetensors header of 16 MB of `[],` (27x when parsed)", "library"),
    Case("U1b", "safetensors header of 1 MB of `[],` (within the header's byte limit)", "library"),
    Case("U2", "editor: multipart body of 10 MB of tiny parts", "editor"),
    Case("U3", "download: an HTML page served with 200 for a checkpoint URL", "download"),
    Case("U4a", "download: Content-Length of 10 TB", "download"),
    Case("U4b", "download: an endless chunked body (cap 64 MB here)", "download"),
    Case("U5", "editor: error messages that would name temporary paths", "editor", seconds=120.0),
    Case("U6", "editor: session whose handles are at 1e30", "editor"),
    Case("U7", "editor: session whose Adam state holds NaN", "editor"),
    Case("U8", "pickled tensor whose legacy torch.save record claims 2^28 floats", "library"),
]
BY_KEY = {c.key: c for c in CASES}


# ============================================================================ library rows (in a child)

def _status(pid: int | str, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak(pid: int | str) -> None:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    except OSError:
        pass


def _library_action(key: str, work: Path):
    """Build the input of row `key` in `work` and return the call that reads it."""
    from draggan.checkpoint import load_generator_file
    from tests.helpers import hostile_files as hf

    def path_of(name: str, data: bytes) -> Path:
        path = work / name
        path.write_bytes(data)
        return path

    if key in ("1", "2", "3a", "6", "U8"):
        data = {"1": hf.pickle_huge_memo, "2": hf.pickle_deep_tuple_key, "3a": hf.pickle_object_scalar,
                "6": lambda: hf.pickle_of_storage(hf.torch_zip_bomb_storage()),
                "U8": lambda: hf.pickle_of_storage(hf.legacy_storage_claiming())}[key]()
        path = path_of(f"row{key}.pkl", data)
        return lambda: load_generator_file(path)
    if key in ("3b", "4", "5"):  # in a TF pickle, whose variables the conversion copies
        from tests.conftest import tiny_generator
        from tests.helpers.official_layout import write_tf_pickle

        path = work / "tf.pkl"
        write_tf_pickle(tiny_generator(16), path, static_kwargs=dict(
            latent_size=16, dlatent_size=16, resolution=16, fmap_base=128, fmap_max=16, mapping_layers=2),
            top_override={"dlatent_avg": {"3b": hf.object_array_of_bytes, "4": hf.object_ndarray,
                                          "5": hf.strided_ndarray}[key]()})
        return lambda: load_generator_file(path)
    if key in ("7a", "7b"):
        from draggan.archives import read_npz

        descr = "|V1073741824" if key == "7a" else "<U268435456"
        path = path_of("row7.npz", hf.npz_of({"ws0": hf.npy_member(descr, (1,))}))
        return lambda: read_npz(path, max_elements=lambda name: 4096)
    if key == "9a":
        from draggan.session_io import read_session_meta

        path = path_of("session.json", hf.json_of_empty_lists(64 << 20))
        return lambda: read_session_meta(path)
    if key in ("U1a", "U1b"):
        header = b'{"x": ' + hf.json_of_empty_lists(((16 << 20) if key == "U1a" else (1 << 20)) - 64) + b"}"
        header += b" " * (-len(header) % 8)
        path = path_of("header.safetensors", len(header).to_bytes(8, "little") + header)
        return lambda: load_generator_file(path)
    raise KeyError(key)


def _download_action(key: str, work: Path):
    from tests.helpers.hostile_servers import ChangingFile, serve

    from draggan.download import download_file

    if key == "15":
        old, new = os.urandom(1 << 20), os.urandom(1 << 20)
        site = serve({"/model.pkl": ChangingFile(old, etag='"v1"', cut_after=300_000)})
        dest = work / "model.pkl"

        def run():
            try:
                download_file(site.url + "/model.pkl", dest, progress=False)
            except Exception:  # noqa: BLE001 - the cut is the point: the .part stays for a resume
                pass
            site.files["/model.pkl"] = ChangingFile(new, etag='"v2"')  # the server's file changed
            download_file(site.url + "/model.pkl", dest, progress=False)
            got = dest.read_bytes()
            if got != new:
                raise AssertionError(f"the cache holds {'a splice of the old and new file' if got[:300_000] == old[:300_000] else 'another file'}")
        return run
    if key == "16":
        site = serve({})

        def run():
            from draggan.loading import resolve_checkpoint

            try:
                resolve_checkpoint(site.url + "/models/..", cache_dir=work / "cache")
            finally:
                left = [p.name for p in work.rglob("*") if p.name.endswith(".part")]
                if left or site.requests:
                    print(json.dumps({"note": f"left {left}; requests sent: {len(site.requests)}"}), flush=True)
        return run
    if key == "U3":
        site = serve({"/model.pkl": ChangingFile(b"<html><body>Sign in to download</body></html>",
                                                 content_type="text/html; charset=utf-8")})

        def run():
            try:
                download_file(site.url + "/model.pkl", work / "model.pkl", progress=False)
            finally:
                if (work / "model.pkl").exists():
                    print(json.dumps({"note": "the HTML page was installed in the cache"}), flush=True)
        return run
    if key in ("U4a", "U4b"):  # the server stops after 512 MB (the cap under test is far below)
        huge = ChangingFile(b"", endless=True, claimed_length=10 << 40 if key == "U4a" else None)
        site = serve({"/model.pkl": huge})
        cap = {} if key == "U4a" else {"max_bytes": 64 << 20}

        def run():
            try:
                download_file(site.url + "/model.pkl", work / "model.pkl", progress=False, timeout=5, **cap)
            finally:
                limit = (64 << 20) if cap else 0
                if site.sent > limit + (16 << 20):
                    print(json.dumps({"note": f"{site.sent >> 20} MB were received"}), flush=True)
        return run
    raise KeyError(key)


def child_main(key: str, work: str) -> None:
    """Run one library or download row and print its measurement as `RESULT {json}`."""
    work_dir = Path(work)
    case = BY_KEY[key]
    action = (_download_action if case.where == "download" else _library_action)(key, work_dir)
    cap = _status("self", "VmSize") + (CAP_MB << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    _reset_peak("self")
    before = _status("self", "VmRSS")
    start = time.monotonic()
    try:
        action()
        error, message = None, ""
    except BaseException as e:  # noqa: BLE001 - reported
        error, message = e, str(e)
    seconds = time.monotonic() - start
    growth = (_status("self", "VmHWM") - before) / 2**20
    print("RESULT " + json.dumps({
        "error": None if error is None else type(error).__name__,
        "own": error is not None and type(error).__module__.split(".")[0] in OWN_ERRORS,
        "message": message[:300], "one_line": "\n" not in message.strip(), "growth_mb": round(growth, 1),
        "seconds": round(seconds, 2)}), flush=True)


def _run_child(case: Case, work: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "tests.helpers.hostile_replay", "child", case.key, str(work)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 120)
    except subprocess.TimeoutExpired:
        return {"verdict": "timed out", "message": f"no answer in {timeout + 120:.0f} s", "seconds": None}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    notes = [json.loads(ln)["note"] for ln in proc.stdout.splitlines() if ln.startswith('{"note"')]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        crash = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return {"verdict": f"crashed ({crash})", "message": tail[:200], "seconds": round(time.monotonic() - start, 1)}
    r = json.loads(lines[-1][len("RESULT "):])
    refused = r["error"] is not None and r["own"] and r["one_line"] and not notes
    fits = r["growth_mb"] < GROWTH_LIMIT_MB and r["seconds"] < case.seconds
    if case.key == "15":  # holds when the right file is installed (or the resume is refused), never a splice
        refused = (r["error"] is None or r["own"]) and not notes
    r["verdict"] = "holds" if refused and fits else "FAILS"
    r["refusal"] = "installed the new file" if case.key == "15" and r["error"] is None else r["error"] or "accepted"
    if notes:
        r["message"] = "; ".join(notes) + (f" | {r['message']}" if r["message"] else "")
    return r


# ============================================================================ editor rows (a live server)

class LiveEditor:
    """`scripts/app.py port=0` on 127.0.0.1 in a child process, its memory read from /proc."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               "TMPDIR": str(self.folder)}
        self.proc = subprocess.Popen([sys.executable, "scripts/app.py", "port=0", "inversion=mse", "threads=1",
                                      "session_timeout=600", f"hydra.run.dir={self.folder / 'run'}"],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            lines.append(line)
            m = re.search(r"editor on (http://\S+/)", line)
            if m:
                self.url = m[1].rstrip("/")
                cap = _status(self.proc.pid, "VmSize") + (CAP_MB << 20)  # a row that takes more fails, not the machine
                resource.prlimit(self.proc.pid, resource.RLIMIT_AS, (cap, cap))
                threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()  # drain
                return
        raise RuntimeError("the editor did not start:\n" + "".join(lines[-20:]))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, path: str, body: bytes | dict | None = None, *, headers: dict | None = None,
             timeout: float = 60) -> tuple[int, object]:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        return status, json.loads(raw) if ctype.startswith("application/json") else raw

    def tab(self) -> str:
        return self.call("/api/session", b"")[1]["sid"]

    def serves(self) -> bool:
        """A normal request afterwards: a new tab shows seed 0, and closes."""
        try:
            sid = self.tab()
            status, state = self.call(f"/api/s/{sid}/generate", {"seed": 0})
            self.call(f"/api/s/{sid}/close", b"")
            return status == 200 and state.get("image", "").startswith("data:image/png")
        except Exception:  # noqa: BLE001 - a dead or hung server does not serve
            return False

    def saved_session(self) -> bytes:
        """The zip of a real session of the default model (3 steps of a drag), as Save writes it."""
        sid = self.tab()
        self.call(f"/api/s/{sid}/generate", {"seed": 0})
        self.call(f"/api/s/{sid}/points", {"handles": [[32, 40]], "targets": [[32, 52]]})
        self.call(f"/api/s/{sid}/start", b"")
        version = -1
        for _ in range(600):
            state = self.call(f"/api/s/{sid}/state?since={version}&wait=2")[1]
            version = state["version"]
            if state["step"] >= 3 or not state["running"]:
                break
        self.call(f"/api/s/{sid}/pause", b"")
        status, data = self.call(f"/api/s/{sid}/save", b"")
        self.call(f"/api/s/{sid}/close", b"")
        assert status == 200, data
        return data


def _multipart(files: dict[str, bytes]) -> tuple[bytes, dict]:
    boundary = "hostile-replay-boundary"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for name, data in files.items()) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _session_files(zipped: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(zipped)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n in ("session.json", "latent.npz")}


def with_arrays(latent: bytes, change) -> bytes:
    """A session's latent.npz with its arrays changed in place by `change(arrays)`."""
    import numpy as np

    arrays = dict(np.load(io.BytesIO(latent)))
    change(arrays)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _editor_requests(key: str, session: bytes) -> list[tuple[str, bytes | dict, dict]]:
    """The requests of editor row `key`: (path under the tab, body, headers)."""
    from tests.helpers import hostile_files as hf

    files = _session_files(session)
    meta = json.loads(files["session.json"])

    def upload(**changed: bytes) -> tuple[str, bytes, dict]:
        body, headers = _multipart({**files, **changed})
        return "load", body, headers

    def with_meta(change) -> bytes:
        m = json.loads(json.dumps(meta))
        change(m)
        return json.dumps(m).encode()

    if key == "7c":
        npz = hf.npz_of({"ws0": hf.npy_member("|V1073741824", (1,))})
        return [upload(**{"latent.npz": npz})] * 3
    if key == "8":
        return [("load", hf.zip_with_lying_directory(), {"X-Filename": "s.zip"})]
    if key == "9b":
        return [("load", hf.session_zip({"session.json": hf.json_of_empty_lists(64 << 20),
                                         "latent.npz": files["latent.npz"]}), {"X-Filename": "s.zip"})]
    if key == "10":
        return [upload(**{"session.json": with_meta(lambda m: m["config"].update(
            method="uclt", method_options={"weights": "/etc/hostname"}))}), ("start", b"", {})]
    if key == "11":
        return [upload(**{"session.json": with_meta(lambda m: m["history"][-1].update(loss="x"))}),
                ("state", None, {})]
    if key == "12a":
        return [upload(**{"latent.npz": with_arrays(files["latent.npz"], lambda a: a["ws0"].fill(float("nan")))}),
                ("start", b"", {})]
    if key == "12b":
        return [upload(**{"latent.npz": with_arrays(files["latent.npz"],
                                                    lambda a: a["step2_free"].fill(float("inf")))}),
                ("start", b"", {})]
    if key == "13a":
        return [("points", b'{"handles": [[1' + b"0" * 400 + b', 1]], "targets": [[1, 1]]}', {})]
    if key == "13b":
        return [("points", b'{"handles": [[' + b"7" * 5000 + b', 1]], "targets": [[1, 1]]}', {})]
    if key == "13c":
        return [("points", b'{"handles": ' + b"[" * 100_000 + b"]" * 100_000 + b', "targets": []}', {})]
    if key == "14":
        return [upload(**{"session.json": with_meta(lambda m: m["config"].update(method="draggan", method_options={}, r2=4096, min_radius=4096))}),
                ("start", b"", {}), ("wait-steps", None, {})]
    if key == "U2":
        part = b"--x\r\n\r\n\r\n"
        body = part * ((10 << 20) // len(part)) + b"--x--\r\n"
        return [("load", body, {"Content-Type": "multipart/form-data; boundary=x"})]
    if key == "U5":
        import numpy as np
        from PIL import Image

        small = io.BytesIO()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(small, format="PNG")
        return [("upload", small.getvalue(), {"X-Filename": "tiny.png"}), ("state-after-inversion", None, {}),
                upload(**{"generator.safetensors": b"not a safetensors file"})]
    if key == "U6":
        return [upload(**{"session.json": with_meta(lambda m: m.update(handles=[[1e30, 1e30]]))})]
    if key == "U7":
        return [upload(**{"latent.npz": with_arrays(files["latent.npz"],
                                                    lambda a: a["step1_adam_exp_avg_sq"].fill(float("nan")))})]
    raise KeyError(key)


def _run_editor_case(case: Case, server: LiveEditor, session: bytes) -> dict:
    requests = _editor_requests(case.key, session)
    sid = server.tab()
    server.call(f"/api/s/{sid}/generate", {"seed": 0})
    pid = server.proc.pid
    _reset_peak(pid)
    before = _status(pid, "VmRSS")
    start = time.monotonic()
    answers: list[tuple[int, str]] = []
    leaked = []
    try:
        for action, body, headers in requests:
            if action == "wait-steps":  # let the drag run two steps (or fail)
                deadline = time.monotonic() + case.seconds
                while time.monotonic() < deadline:
                    status, state = server.call(f"/api/s/{sid}/state?since=-1")
                    if status != 200 or not state.get("running") or state.get("step", 0) >= 5:
                        answers.append((status, state.get("message", "") if isinstance(state, dict) else ""))
                        break
                    time.sleep(0.5)
                continue
            if action == "state-after-inversion":
                for _ in range(120):
                    status, state = server.call(f"/api/s/{sid}/state?since=-1")
                    if state.get("status") != "inverting":
                        break
                    time.sleep(0.25)
                answers.append((400 if state.get("level") == "error" else status, state.get("message", "")))
                continue
            if case.key == "7c":  # three uploads at once, each in its own tab
                results: list = []
                tabs = [server.tab() for _ in range(3)]
                threads = [threading.Thread(target=lambda b=body, h=headers, t=t: results.append(
                    server.call(f"/api/s/{t}/{action}", b, headers=h))) for t in tabs]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(case.seconds + 60)
                answers += [(s, a.get("error", "") if isinstance(a, dict) else "") for s, a in results]
                for t in tabs:
                    server.call(f"/api/s/{t}/close", b"")
                break
            path = f"/api/s/{sid}/{action}" if action != "state" else f"/api/s/{sid}/state?since=-1"
            status, answer = server.call(path, body, headers=headers, timeout=case.seconds + 60)
            message = answer.get("error", answer.get("message", "")) if isinstance(answer, dict) else ""
            answers.append((status, message))
            if status >= 400:
                break
    except Exception as e:  # noqa: BLE001 - a connection the server dropped, a timeout
        answers.append((0, f"{type(e).__name__}: {e}"))
    seconds = time.monotonic() - start
    alive = server.alive()
    growth = (_status(pid, "VmHWM") - before) / 2**20 if alive else float("nan")
    if alive:
        try:
            server.call(f"/api/s/{sid}/close", b"")
        except Exception:  # noqa: BLE001 - judged by the normal request below
            pass
    serving = alive and server.serves()
    for _, message in answers:
        if re.search(r"/tmp/|draggan-app-|tab-[\w-]{6}", message):
            leaked.append(message)
    refused_at = next((i for i, (s, _) in enumerate(answers) if 400 <= s < 500), None)
    status, message = answers[refused_at] if refused_at is not None else (answers[-1] if answers else (0, ""))
    if case.key == "U5":  # holds when no message names a temporary path
        refused = not leaked and all(s < 500 for s, _ in answers)
    elif case.key == "7c":
        refused = len(answers) == 3 and all(400 <= s < 500 and "\n" not in m for s, m in answers)
    else:  # refused by the first request (the upload itself), in one line, before anything else ran
        refused = refused_at == 0 and "\n" not in message.strip() and bool(message)
    fits = alive and growth < GROWTH_LIMIT_MB and seconds < case.seconds
    return {"verdict": "holds" if refused and fits and serving else "FAILS",
            "refusal": f"HTTP {status}" if status else "no answer", "message": (leaked[0] if leaked else message)[:300],
            "growth_mb": round(growth, 1), "seconds": round(seconds, 2), "serving": serving,
            "answers": answers}


# ============================================================================ the replay

def replay(keys: list[str] | None = None, *, workdir: str | os.PathLike | None = None,
           log=print) -> list[dict]:
    """Replay the rows `keys` (default: all); returns one dict per row (key, title, owner, verdict, ...)."""
    cases = [BY_KEY[k] for k in keys] if keys else CASES
    out = []
    with tempfile.TemporaryDirectory(prefix="hostile-replay-", dir=workdir) as tmp:
        tmp_path = Path(tmp)
        server = None
        session = b""
        try:
            for case in cases:
                work = tmp_path / f"row-{case.key}"
                work.mkdir()
                if case.where == "editor":
                    if server is None or not server.alive():
                        server = LiveEditor(tmp_path / f"editor-{case.key}")
                        (tmp_path / f"editor-{case.key}").mkdir()
                        server.start()
                        session = session or server.saved_session()
                    try:
                        result = _run_editor_case(case, server, session)
                    except Exception as e:  # noqa: BLE001 - the replay goes on
                        result = {"verdict": "FAILS", "refusal": "replay error",
                                  "message": f"{type(e).__name__}: {e}"[:300], "trace": traceback.format_exc()[-800:]}
                else:
                    result = _run_child(case, work, case.seconds)
                result = {"key": case.key, "title": case.title, "where": case.where, "owner": case.owner, **result}
                log(format_row(result))
                out.append(result)
        finally:
            if server is not None:
                server.stop()
    return out


def format_row(r: dict) -> str:
    growth = r.get("growth_mb")
    growth = "-" if growth is None or growth != growth else f"{growth:.0f}"
    seconds = "-" if r.get("seconds") is None else f"{r['seconds']:.1f}"
    verdict = r["verdict"] + (" (lead's)" if r.get("owner") == "lead" else "")
    message = (r.get("message") or "").replace("|", "/").replace("\n", " ")
    return (f"| {r['key']} | {r['title']} | {verdict} | {r.get('refusal', '')} | {growth} | {seconds} | "
            f"{message[:140]} |")


TABLE_HEAD = ("| # | input | verdict | answer | growth MB | s | message |\n"
              "|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="row keys (default: all): " + " ".join(BY_KEY))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    print(TABLE_HEAD, flush=True)
    results = replay(args.rows or None, log=lambda line: print(line, flush=True))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    mine = [r for r in results if r["owner"] != "lead"]
    failed = [r["key"] for r in mine if r["verdict"] != "holds"]
    print(f"\n{len(mine) - len(failed)} of {len(mine)} rows hold"
          + (f"; failing: {', '.join(failed)}" if failed else "")
          + f"; the lead's rows: {', '.join(r['key'] + ' ' + r['verdict'] for r in results if r['owner'] == 'lead')}",
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
