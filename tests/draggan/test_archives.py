"""Zip, npz and JSON read under their limits (`draggan.archives`, `draggan.files`): directories counted from
their own end record, members sized by their headers (dtype item size included), JSON measured before it is
parsed; each hostile input refused in one line, fast, and (in a capped child) without memory growth."""

from __future__ import annotations

import io
import json
import time
import zipfile

import numpy as np
import pytest

from draggan.archives import read_npz, read_zip, zip_directory
from draggan.files import FileFormatError, parse_json, read_json
from draggan.limits import MAX_ARCHIVE_MEMBERS, MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, LimitError
from tests.helpers import hostile_files as hf
from tests.helpers.memory import run_capped


def _zip(members: dict[str, bytes], **kw) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            with zf.open(name, "w", **kw) as f:
                f.write(data)
    return buf.getvalue()


def test_the_directory_is_read_from_its_own_end_record():
    data = _zip({"a.txt": b"hello", "b/c.bin": b"\0" * 1000})
    members = zip_directory(io.BytesIO(data), "z")
    assert [(m.name, m.size) for m in members] == [("a.txt", 5), ("b/c.bin", 1000)]
    assert members[1].method == zipfile.ZIP_DEFLATED and members[1].compressed < 1000
    zip64 = _zip({"big.bin": b"\1" * 100}, force_zip64=True)
    assert [(m.name, m.size) for m in zip_directory(io.BytesIO(zip64), "z")] == [("big.bin", 100)]
    assert read_zip(b"prefix" + data, names=["a.txt"]) == {"a.txt": b"hello"}  # data before the archive


@pytest.mark.parametrize("claimed, message", [(1, "more members than its end record's 1"),
                                               (60_000, f"holds 60000 members; at most {MAX_ARCHIVE_MEMBERS}")])
def test_a_directory_longer_than_its_count_or_the_limit_is_refused_before_zipfile_parses_it(claimed, message):
    data = hf.zip_with_lying_directory(600_000, claimed)
    start = time.monotonic()
    with pytest.raises((FileFormatError, LimitError), match=message):
        read_zip(data, names=["a"])
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("data, message", [(b"", "no end record"), (b"PK\x05\x06" + b"\0" * 10, "no end record"),
                                           (b"not a zip at all" * 10, "no end record")])
def test_broken_zips_are_file_format_errors(data, message):
    with pytest.raises(FileFormatError, match=message):
        read_zip(data, names=["a"])


def test_members_are_held_to_their_own_limits_by_their_declared_sizes():
    data = hf.session_zip({"session.json": b" " * 5000, "latent.npz": b"x" * 100})
    with pytest.raises(LimitError, match="member session.json unpacks to 5000 bytes; at most 4000"):
        read_zip(data, names=["session.json", "latent.npz"], max_member_bytes={"session.json": 4000})
    assert read_zip(data, names=["latent.npz"], max_member_bytes={"session.json": 4000}) == {"latent.npz": b"x" * 100}
    with pytest.raises(LimitError, match="unpacks to 5100 bytes; at most 5000"):
        read_zip(data, names=["session.json", "latent.npz"], max_bytes=5000)


@pytest.mark.parametrize("descr", ["|V1073741824", "<U268435456", "|S1073741824", "|O", "<c16", "<f16"])
def test_npz_dtypes_other_than_plain_numbers_are_refused_from_the_header(tmp_path, descr):
    path = tmp_path / "a.npz"
    path.write_bytes(hf.npz_of({"ws0": hf.npy_member(descr, (1,))}))
    with pytest.raises(FileFormatError, match="array ws0 is .* of shape \\[1\\], which this file does not hold|its "
                                              "dtype is not a plain number"):
        read_npz(path, max_elements=lambda name: 10)


def test_npz_structured_dtypes_and_inconsistent_members_are_refused(tmp_path):
    path = tmp_path / "a.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": [("a", "<f4")], "fortran_order": False, "shape": (1,)})
    path.write_bytes(hf.npz_of({"x": header.getvalue() + b"\0" * 4}))
    with pytest.raises(FileFormatError, match="dtype is not a plain number"):
        read_npz(path, max_elements=lambda name: 10)
    path.write_bytes(hf.npz_of({"x": hf.npy_member("<f4", (4,), b"\0" * 8)}))  # 2 of 4 floats
    with pytest.raises(FileFormatError, match="array x declares 16 bytes of data, its member 8"):
        read_npz(path, max_elements=lambda name: 10)
    np.savez(path, x=np.arange(4, dtype=np.float32), m=np.ones((2, 2), bool))
    arrays = read_npz(path, max_elements=lambda name: 10)
    assert arrays["x"].tolist() == [0, 1, 2, 3] and arrays["m"].all()
    with pytest.raises(FileFormatError, match="array m is bool of shape"):
        read_npz(path, max_elements=lambda name: 0 if name == "m" else 10)  # 0: a name the caller does not expect


@pytest.mark.parametrize("text, message", [
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), f"{MAX_JSON_DEPTH + 1} levels deep"),
    ("[" + "[]," * MAX_JSON_CONTAINERS + "[]]", "lists and objects"),
    ("[" + "0," * 1_000_000 + "0]", "about 1000001 values"),
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": Infinity}', "Infinity is not a JSON number"),
    ('{"a": ' + "7" * 5000 + "}", "Exceeds the limit"),
    ('{"a": [1, 2', "truncated or not valid JSON"),
])
def test_json_is_measured_before_it_is_parsed(text, message):
    start = time.monotonic()
    with pytest.raises(FileFormatError, match=message) as e:
        parse_json(text, source="the text")
    assert "\n" not in str(e.value) and time.monotonic() - start < 5


def test_brackets_inside_strings_are_not_counted():
    text = json.dumps({"a": "[" * 1000 + "{" * 1000, "b": ['"]]]', "\\\\[[[", [1, [2]]]})
    assert parse_json(text, source="t")["b"][2] == [1, [2]]


def test_a_file_above_the_json_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "s.json"
    path.write_bytes(b" " * 2000)
    with pytest.raises(FileFormatError, match="is 2000 bytes; at most 1000 are read"):
        read_json(path, max_bytes=1000)


def test_hostile_archives_and_json_cost_little_memory(tmp_path):
    """The issue's inputs at full size, in a child capped at 1.5 GB above its imports: a 600,000-entry directory,
    npz members whose dtype claims 1 GB an item, 64 MB of `[],` and a 16 MB one within the byte limit."""
    files = {"directory of 600,000": hf.zip_with_lying_directory(), "|V1073741824": hf.npz_of(
        {"w": hf.npy_member("|V1073741824", (1,))}), "<U268435456": hf.npz_of({"w": hf.npy_member("<U268435456", (1,))}),
        "64 MB of [],": hf.json_of_empty_lists(64 << 20), "16 MB of [],": hf.json_of_empty_lists((16 << 20) - 8)}
    paths = {}
    for i, (label, data) in enumerate(files.items()):
        paths[label] = str(tmp_path / f"{i}.bin")
        (tmp_path / f"{i}.bin").write_bytes(data)
    results = run_capped(f"""
        p = {paths!r}
        attempt("directory of 600,000", lambda: read_zip(open(p["directory of 600,000"], "rb").read(), names=["a"]))
        for label in ("|V1073741824", "<U268435456"):
            attempt(label, lambda: read_npz(p[label], max_elements=lambda name: 4096))
        for label in ("64 MB of [],", "16 MB of [],"):
            attempt(label, lambda: read_json(p[label]))
    """, imports="from draggan.archives import read_npz, read_zip\nfrom draggan.files import read_json", headroom_mb=1500)
    for label, r in results.items():
        assert r["error"] in ("FileFormatError", "LimitError") and "\n" not in r["message"], (label, r)
        assert r["growth_mb"] < 150, (label, r)


def test_the_crashes_fuzzing_found_are_file_format_errors(tmp_path):
    """A member whose name begins with NUL (zipfile cuts it to '' and then fails on it) and a corrupt deflate
    stream (zlib.error) were crashes of the readers; both are refused in one line."""
    data = bytearray(_zip({"ws0.npy": hf.npy_member("<f4", (2,), b"\0" * 8)}))
    for at in [i for i in range(len(data)) if data[i:i + 7] == b"ws0.npy"]:
        data[at] = 0
    with pytest.raises(FileFormatError, match="no name, or a NUL in it"):
        read_zip(bytes(data), names=["ws0.npy"])
    data = bytearray(_zip({"ws0.npy": hf.npy_member("<f4", (64,), bytes(range(256)))}))
    start = data.index(b"ws0.npy") + len("ws0.npy")  # the deflate stream of the first local member
    data[start + 5:start + 9] = b"\xff\xff\xff\xff"
    (tmp_path / "a.npz").write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="not an .npz file|not a .npy array|truncated"):
        read_npz(tmp_path / "a.npz", max_elements=lambda name: 100)
