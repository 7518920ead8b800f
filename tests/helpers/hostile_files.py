"""Small files that claim to be huge, made without allocating what they claim: a PNG of any size in a
few hundred KB, an .npz whose array inflates to hundreds of MB, a session zip that carries them."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int, height: int) -> bytes:
    """A valid black 8-bit grayscale PNG of width x height, compressed row by row (a 10000x10000 one is ~100 KB)."""
    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def npz_bomb(arrays: dict[str, np.ndarray], bomb: str, elements: int) -> bytes:
    """An .npz holding `arrays` and an array `bomb` of `elements` float32 zeros, deflated (512 MB -> ~500 KB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            member = io.BytesIO()
            np.save(member, value)
            zf.writestr(name + ".npy", member.getvalue())
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (elements,)})
        with zf.open(bomb + ".npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block = b"\0" * (1 << 22)
            for _ in range(elements * 4 // len(block)):
                f.write(block)
    return buf.getvalue()


def session_zip(files: dict[str, bytes]) -> bytes:
    """A zip of a saved session's files (as the editor's Save writes it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data if isinstance(data, bytes) else json.dumps(data))
    return buf.getvalue()


# ---------------------------------------------------------------- round 2 (issue 26): pickles

class _Reduce:
    """Pickles as `fn(*args)` (the pickler names `fn` by its module and qualified name): a call the loader
    must refuse or bound, written without building what it would build."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def _numpy_core():
    return np._core.multiarray if hasattr(np, "_core") else np.core.multiarray


def pickle_huge_memo(index: int = 2**26) -> bytes:
    """A pickle of a few bytes that stores None at memo index `index` (C pickle sizes its memo table by the index)."""
    return b"\x80\x02Nr" + struct.pack("<I", index) + b"."


def pickle_deep_tuple_key(depth: int = 10**6) -> bytes:
    """{((((...)))): 1}: a tuple nested `depth` deep used as a dict key (hashing it recurses in C)."""
    return b"\x80\x02}" + b")" + b"\x85" * depth + b"K\x01s."


def crafted_object_dtype() -> _Reduce:
    """`dtype('O')` whose pickled state clears the flag that makes numpy read object arrays from lists: numpy
    then takes raw bytes as object pointers."""
    return _Reduce(np.dtype, "O8", False, True, state=(3, "|", None, None, None, 8, 1, 25))


def pickle_object_scalar() -> bytes:
    """A numpy scalar of the crafted object dtype made from 8 raw bytes (read as a pointer: a crash)."""
    import pickle

    return pickle.dumps({"G_ema": _Reduce(_numpy_core().scalar, crafted_object_dtype(), b"A" * 8)}, protocol=4)


def object_array_of_bytes() -> _Reduce:
    """An ndarray of the crafted object dtype whose state is 8 raw bytes (a pointer again)."""
    return _Reduce(_numpy_core()._reconstruct, np.ndarray, (0,), b"b",
                   state=(1, (1,), crafted_object_dtype(), False, b"A" * 8))


def object_ndarray(elements: int = 2**27) -> _Reduce:
    """`_reconstruct(ndarray, (elements,), object)`: numpy allocates the array before any state is read."""
    return _Reduce(_numpy_core()._reconstruct, np.ndarray, (elements,), np.dtype(object))


def strided_ndarray(elements: int = 2**28) -> _Reduce:
    """`ndarray((elements,), float32, buffer=4 bytes, strides=(0,))`: a huge stride-0 view of 4 bytes."""
    return _Reduce(np.ndarray, (elements,), np.dtype(np.float32), b"\0" * 4, 0, (0,))


def deflated_zeros(size: int) -> tuple[bytes, int]:
    """(raw deflate stream, crc32) of `size` zero bytes (a multiple of 4 MB), made from one compressed block:
    after a full flush every block of zeros compresses to the same bytes."""
    block = b"\0" * (1 << 22)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(size // len(block)):
        crc = zlib.crc32(block, crc)
    return first + again * (size // len(block) - 1) + z.flush(), crc


def zip_by_hand(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, stored bytes, method (0 stored, 8 deflated), uncompressed size, crc32) members."""
    out, directory = io.BytesIO(), b""
    for name, payload, method, size, crc in members:
        offset, raw = out.tell(), name.encode()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload), size, len(raw), 0)
                  + raw + payload)
        directory += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(payload), size,
                                 len(raw), 0, 0, 0, 0, 0, offset) + raw
    start = out.tell()
    out.write(directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory),
                                      start, 0))
    return out.getvalue()


def torch_zip_bomb_storage(inflated: int = 1 << 30) -> bytes:
    """The bytes of `torch.save(storage)` (zip format) whose data record is `inflated` zero bytes, deflated
    (1 MB per GB): what `torch.storage._load_from_bytes` inflates when it reads a pickled tensor."""
    import torch

    buf = io.BytesIO()
    torch.save(torch.zeros(4).untyped_storage(), buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = []
    for info in src.infolist():
        if info.filename.endswith("/data/0"):
            stream, crc = deflated_zeros(inflated)
            members.append((info.filename, stream, 8, inflated, crc))
        else:
            data = src.read(info)
            members.append((info.filename, data, 0, len(data), zlib.crc32(data)))
    return zip_by_hand(members)


def legacy_storage_claiming(elements: int = 2**28) -> bytes:
    """The bytes of a legacy (pre-zip) `torch.save(storage)` whose record claims `elements` floats but holds 4."""
    import warnings

    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(torch.zeros(1).storage(), buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    # the storage record's element count is the BININT1 1 (K\x01) before `Ntq`: make it a BININT of `elements`
    at = data.index(b"K\x01Ntq")
    return data[:at] + b"J" + struct.pack("<i", elements) + data[at + 2:]


def pickle_of_storage(storage_bytes: bytes) -> bytes:
    """A network pickle ({'G_ema': tensor}) whose tensor's storage is read from `storage_bytes`."""
    import collections
    import pickle

    import torch

    storage = _Reduce(torch.storage._load_from_bytes, storage_bytes)
    tensor = _Reduce(torch._utils._rebuild_tensor_v2, storage, 0, (4,), (1,), False, collections.OrderedDict())
    return pickle.dumps({"G_ema": tensor}, protocol=4)


# ---------------------------------------------------------------- npz, zip and JSON

def npy_member(descr: str, shape: tuple, data: bytes = b"") -> bytes:
    """A .npy member whose header declares `descr` and `shape` (the data may be shorter than declared)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue() + data


def npz_of(members: dict[str, bytes]) -> bytes:
    """An .npz (a deflated zip) of raw .npy members, by array name."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return buf.getvalue()


def zip_with_lying_directory(entries: int = 600_000, claimed: int = 1) -> bytes:
    """A zip whose central directory lists `entries` one-letter files while its end record claims `claimed`."""
    record = struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a"
    directory = record * entries
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, claimed, claimed, len(directory), 0, 0)
    return directory + end


def json_of_empty_lists(size: int = 64 << 20) -> bytes:
    """`[[],[],...]` of about `size` bytes: 3 bytes per list object."""
    n = max(1, (size - 2) // 3)
    return b"[" + b"[]," * (n - 1) + b"[]]"
