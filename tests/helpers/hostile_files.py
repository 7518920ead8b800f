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
