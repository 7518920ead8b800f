"""Fuzz targets (hypothesis) for the readers of untrusted input, run in a child process under an address-space cap.

Each target draws inputs around real ones (a network pickle, a session's latent.npz and session.json, the
editor's requests) by mutating them and splicing in the fragments of the hostile inputs of issue 26, then
checks the property every reader promises: the input is read, or it is refused with an error of the
project's own type in one line that is not a disguised MemoryError or RecursionError, and reading it made
the process's resident memory grow by less than `GROWTH_MB` (the kernel's high-water mark, reset per example).

`python -m tests.helpers.fuzz_targets TARGET EXAMPLES SEED` runs one target (SEED 0: hypothesis's fixed,
derandomized order, as the default test run uses) and prints `FUZZ {json}` (outcomes, the largest growth);
`run_fuzz` runs it from a test (`tests/draggan/test_fuzz_readers.py`, `tests/apps/test_fuzz_editor.py`): a fixed
budget in the default run, a larger one with random seeds behind `-m fuzz`.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import urllib.parse
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

GROWTH_MB = 200
CAP_MB = 1536  # address space above the size after the imports
OUTCOMES: Counter = Counter()
PEAK = [0.0, ""]  # the largest growth of any example, and what that example came to


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _measured(read, allowed: tuple[type, ...]):
    """Call `read()`; its result, or None if it raised one of `allowed` (checked: one line, no disguised memory or
    recursion failure); its growth of resident memory under GROWTH_MB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status("VmRSS")
    outcome = "read"
    try:
        result = read()
        OUTCOMES["read"] += 1
    except allowed as e:
        outcome = f"{type(e).__name__}: {str(e)[:200]}"
        message = str(e)
        assert "\n" not in message.strip(), f"a message of several lines: {message[:300]!r}"
        assert not isinstance(e.__cause__, (MemoryError, RecursionError)) and "MemoryError" not in message \
            and "RecursionError" not in message, f"a memory or recursion failure behind the refusal: {message[:300]}"
        OUTCOMES[type(e).__name__] += 1
        result = None
    growth = (_status("VmHWM") - before) / 2**20
    if growth > PEAK[0]:
        PEAK[:] = [growth, outcome]
    assert growth < GROWTH_MB, f"reading it grew memory by {growth:.0f} MB"
    return result


# ---------------------------------------------------------------- mutations

HOSTILE_FRAGMENTS = [  # pieces of the inputs, spliced into real files
    b"r" + struct.pack("<I", 2**26),  # LONG_BINPUT 2^26
    b")" + b"\x85" * 5000,  # a tuple 5000 deep
    b"\x8e" + struct.pack("<Q", 2**40),  # BINBYTES8 of 1 TB
    b"\x95" + struct.pack("<Q", 2**40),  # a frame of 1 TB
    b"(" + b"]" * 3000 + b"l",  # thousands of lists
    b"\x8c\x05numpy\x8c\x07ndarray\x93", b"\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02O8\x89\x88\x87R",
    b"PK\x05\x06" + b"\xff" * 18, b"PK\x01\x02", b"\x93NUMPY\x01\x00",
    b"{'descr': '|V1073741824', 'fortran_order': False, 'shape': (1,), }",
    b"{'descr': '<U268435456', 'fortran_order': False, 'shape': (3,), }",
    b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,), }",
]


@st.composite
def mutated(draw, base: bytes, max_edits: int = 4) -> bytes:
    """`base` with a few edits: bytes replaced, hostile fragments or random bytes inserted, a cut."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["byte", "fragment", "insert", "cut", "number"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "byte" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "fragment":
            data[at:at] = draw(st.sampled_from(HOSTILE_FRAGMENTS))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "cut":
            del data[at:]
        elif kind == "number" and len(data) >= at + 4:
            data[at:at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 2**31, 2**20])))
    return bytes(data)


def _settings(examples: int, seed_value: int):
    return settings(max_examples=examples, deadline=None, database=None, derandomize=seed_value == 0,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def _run(test, examples: int, seed_value: int) -> None:
    test = _settings(examples, seed_value)(test)
    if seed_value:
        test = seed(seed_value)(test)
    test()


# ---------------------------------------------------------------- targets

def fuzz_pickle(examples: int, seed_value: int, work: Path) -> None:
    """Network pickles: the official layout (PyTorch and TF), mutated; `load_generator_file` reads or refuses."""
    from draggan.checkpoint import CheckpointError, load_generator_file
    from tests.conftest import tiny_generator
    from tests.helpers.official_layout import write_official_pickle, write_tf_pickle

    G = tiny_generator(16)
    write_official_pickle(G, work / "official.pkl", only_g_ema=True)
    write_tf_pickle(G, work / "tf.pkl", static_kwargs=dict(latent_size=16, dlatent_size=16, resolution=16,
                                                           fmap_base=128, fmap_max=16, mapping_layers=2))
    bases = [(work / "official.pkl").read_bytes(), (work / "tf.pkl").read_bytes()]
    path = work / "fuzzed.pkl"
    load_generator_file(work / "official.pkl")  # PyTorch loads its meta-device code once (150 MB): not a growth

    @given(st.sampled_from(bases).flatmap(lambda b: mutated(b)))
    @example(bases[0])  # the files as written: read, whatever the budget
    @example(bases[1])
    def read_pickle(data):
        path.write_bytes(data)
        _measured(lambda: load_generator_file(path), (CheckpointError,))

    _run(read_pickle, examples, seed_value)


def fuzz_npz(examples: int, seed_value: int, work: Path) -> None:
    """Archives: a session's latent.npz, mutated, and zips of crafted .npy headers; read_npz / read_zip."""
    from draggan.archives import read_npz, read_zip
    from draggan.files import FileFormatError
    from draggan.limits import LimitError

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez_compressed(buf, ws0=rng.standard_normal((1, 6, 16), dtype=np.float32), mask=np.ones((8, 8), bool),
                        step0_handles_rc=np.zeros((1, 2), np.float32))
    base = buf.getvalue()
    descr = st.sampled_from(["<f4", "<f8", "|b1", "<i8", "|V1073741824", "<U268435456", "|S99999999", "|O", "<c16",
                             "[('a', '<f4')]", "'<f4'", "<f4 "])
    shape = st.lists(st.sampled_from([0, 1, 3, 2**16, 2**31, 2**62]), max_size=4).map(tuple)

    @st.composite
    def crafted(draw) -> bytes:
        header = f"{{'descr': '{draw(descr)}', 'fortran_order': {draw(st.booleans())}, 'shape': {draw(shape)}, }}"
        member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + draw(st.binary(max_size=64))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("ws0.npy", member)
        return draw(mutated(out.getvalue(), 2)) if draw(st.booleans()) else out.getvalue()

    path = work / "fuzzed.npz"

    @given(st.one_of(mutated(base), crafted()))
    @example(base)
    def read_archive(data):
        path.write_bytes(data)
        _measured(lambda: read_npz(path, max_elements=lambda name: 4096), (FileFormatError, LimitError))
        _measured(lambda: read_zip(data, names=["ws0.npy", "mask.npy"]), (FileFormatError, LimitError))

    _run(read_archive, examples, seed_value)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.sampled_from([10**400, -(10**300)]),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                                st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                           max_leaves=30)


def fuzz_session_json(examples: int, seed_value: int, work: Path) -> None:
    """session.json of a real session with fields replaced by any JSON (deep, huge, NaN...) or its text mutated;
    `load_session` rebuilds the session or refuses it with a SessionFileError. The `config` object is left as
    saved: its radii and method options are the drag's (issue 26 rows 10 and 14, the lead's)."""
    from draggan.session import DragSession
    from draggan.settings import DragConfig
    from draggan.session_io import SessionFileError, load_session, save_session
    from tests.conftest import tiny_generator

    G = tiny_generator(16)
    session = DragSession(G, G.mapping(G.mapping.fc0.weight.new_ones(1, 16), None), [[4, 4]], [[9, 9]],
                          config=DragConfig(feature_block=1))
    for _ in range(2):
        session.step()
    folder = save_session(session, work / "run", generator="tiny")
    meta = json.loads((folder / "session.json").read_text())
    text = (folder / "session.json").read_bytes()
    paths = [("handles",), ("targets",), ("steps",), ("generator",), ("done",), ("history",), ("history", 0),
             ("history", 1, "loss"), ("history", 0, "handles"), ("history", 1, "distances"), ("history", 0, "step"),
             ("history", 1, "done"), ("history", 0, "error"), ("handles", 0), ("targets", 0, 1), ("final_handles",)]

    def replaced(path, value) -> bytes:
        m = json.loads(json.dumps(meta))
        holder = m
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = value
        return json.dumps(m).encode()  # NaN and Infinity as JSON's extension tokens: they are refused

    edits = st.one_of(st.builds(replaced, st.sampled_from(paths), JSON_VALUES), mutated(text))

    @given(edits)
    @example(text)
    def read_session(data):
        (folder / "session.json").write_bytes(data)
        _measured(lambda: load_session(folder, G), (SessionFileError,))

    _run(read_session, examples, seed_value)


def fuzz_editor(examples: int, seed_value: int, work: Path) -> None:
    """The editor's request handlers through HTTP on 127.0.0.1: any JSON (or bytes) to points, undo and
    generate, any query numbers, any multipart body to load. Every answer is 200, or a 4xx with a one-line
    message (a 500 fails), and the server keeps answering."""
    import http.client

    from draggan.apps.editor.editor import Editor, EditorLimits, GeneratorChoice
    from draggan.settings import DragConfig
    from tests.conftest import tiny_generator
    from tests.helpers.editor_server import serving

    G = tiny_generator(32)
    editor = Editor([GeneratorChoice("tiny", "tiny", DragConfig(feature_block=2, max_steps=3))], load=lambda s: G,
                    out_dir=work / "saved", limits=EditorLimits(max_upload_bytes=100_000, max_session_bytes=1 << 20))
    bodies = st.one_of(JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                       st.fixed_dictionaries({"handles": JSON_VALUES, "targets": JSON_VALUES}).map(
                           lambda v: json.dumps(v).encode()),
                       st.sampled_from([b'{"handles": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                        b'{"seed": ' + b"9" * 5000 + b"}", b'{"step": 1' + b"0" * 400 + b"}"]),
                       mutated(b'{"handles": [[10, 10]], "targets": [[12, 12]], "seed": 1, "step": 0}'),
                       st.binary(max_size=64))
    query = st.one_of(st.text(max_size=20), st.sampled_from(["9" * 400, "nan", "-1", "1e400", "0x10"]))
    multipart = st.builds(lambda boundary, parts, tail: (
        b"".join(b"--" + boundary + b"\r\n" + p for p in parts) + tail, boundary),
        st.sampled_from([b"b", b"xyz", b"--"]), st.lists(st.binary(max_size=40), max_size=20),
        st.sampled_from([b"", b"--b--\r\n", b"\r\n"]))
    requests = st.one_of(
        st.tuples(st.sampled_from(["points", "undo", "generate"]), bodies, st.just({})),
        st.tuples(st.sampled_from(["state?since=", "state?wait=", "preview?step="]), query, st.just({})),
        multipart.map(lambda bb: ("load", bb[0], {"Content-Type": "multipart/form-data; boundary=" + bb[1].decode()})))

    with serving(editor) as srv:
        host, port = srv.server_address[:2]

        def call(method: str, path: str, body: bytes | None = None, headers: dict | None = None):
            # a connection per request: the server may close an idle kept-alive one (its slow-client timeout),
            # which on a busy machine falls between two requests
            conn = http.client.HTTPConnection(host, port, timeout=30)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        sid = json.loads(call("POST", "/api/session", b"")[1])["sid"]
        assert call("POST", f"/api/s/{sid}/generate", b'{"seed": 0}')[0] == 200

        @given(requests)
        @example(("points", b'{"handles": [[10, 10]], "targets": [[12, 12]]}', {}))
        @example(("points", b'{"handles": [[1' + b"0" * 400 + b', 1]], "targets": [[1, 1]]}', {}))
        def request(req):
            route, payload, headers = req
            if route.endswith("="):
                method, path, body = "GET", f"/api/s/{sid}/{route}{urllib.parse.quote(payload)}", None
            else:
                method, path, body = "POST", f"/api/s/{sid}/{route}", payload

            def send():
                status, raw = call(method, path, body, headers)
                OUTCOMES[f"HTTP {status}"] += 1
                if status >= 400:
                    message = json.loads(raw)["error"]
                    assert 400 <= status < 500, f"HTTP {status}: {message}"
                    assert "\n" not in message.strip() and message
                return status

            _measured(send, ())
            assert call("GET", f"/api/s/{sid}/state?since=-1")[0] == 200  # still serving

        _run(request, examples, seed_value)


def run_fuzz(target: str, examples: int, seed_value: int = 0, timeout: float = 600) -> dict:
    """Run `target` in a child under the cap; its summary (outcome counts, peak growth), or an AssertionError
    that carries hypothesis's falsifying example."""
    import pytest

    if not sys.platform.startswith("linux"):
        pytest.skip("the address-space cap and /proc measurements need Linux")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.fuzz_targets", target, str(examples), str(seed_value)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("FUZZ ")]
    assert proc.returncode == 0 and lines, f"fuzzing {target} found a failure (rc {proc.returncode}):\n" \
                                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1][len("FUZZ "):])


TARGETS = {"pickle": fuzz_pickle, "npz": fuzz_npz, "session_json": fuzz_session_json, "editor": fuzz_editor}


def main(target: str, examples: int, seed_value: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import torch  # noqa: F401 - imported before the cap: its libraries map gigabytes of address space

        import draggan.apps.editor.editor  # noqa: F401

        cap = _status("VmSize") + (CAP_MB << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        TARGETS[target](examples, seed_value, work)
    print("FUZZ " + json.dumps({"target": target, "outcomes": dict(OUTCOMES), "peak_growth_mb": round(PEAK[0], 1),
                                "peak_outcome": PEAK[1]}), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
