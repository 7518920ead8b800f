"""Reading and writing the project's files safely: atomic writes, and JSON, npz and zip files read under
the limits of `draggan.limits` with errors that name the file.

Archives are read from their directory and headers before their data: a zip member's declared size
(which also bounds what `zipfile` will inflate) is checked before the member is read, and an npz
array's dtype and shape come from its .npy header before its data is decompressed, so an archive of
a few KB that inflates to gigabytes costs nothing but its refusal.
"""

from __future__ import annotations

import ast
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from draggan.limits import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, MAX_JSON_BYTES, LimitError


class FileFormatError(ValueError):
    """A file that is truncated, corrupt, not of the expected kind, or above a limit; the message names it."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path` (never a half-written file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `path`; a missing, oversized, truncated or invalid file is a FileFormatError naming it."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise FileFormatError(f"{path} is {path.stat().st_size} bytes; at most {max_bytes} are read")
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if isinstance(e, FileFormatError):
            raise
        raise FileFormatError(f"{path} is truncated or not valid JSON ({type(e).__name__}: {e})") from None
    except OSError as e:
        raise FileFormatError(f"{path} cannot be read ({e.strerror or e})") from None


def _open_zip(fp, source: str) -> zipfile.ZipFile:
    """A ZipFile, once the end record said that its directory is within MAX_ARCHIVE_MEMBERS entries (a directory
    of millions of empty entries would cost gigabytes of ZipInfo objects before any check could run)."""
    try:
        end = zipfile._EndRecData(fp)  # the record zipfile itself reads first
    except OSError as e:
        raise FileFormatError(f"{source} cannot be read ({e})") from None
    if end is None:
        raise FileFormatError(f"{source} is truncated or not a zip file (no end record)")
    if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ARCHIVE_MEMBERS or end[zipfile._ECD_SIZE] > MAX_ARCHIVE_MEMBERS * 1024:
        raise LimitError(f"{source} holds {end[zipfile._ECD_ENTRIES_TOTAL]} members; at most {MAX_ARCHIVE_MEMBERS} "
                         "are read")
    fp.seek(0)
    return zipfile.ZipFile(fp)


def _members(zf: zipfile.ZipFile, source: str, names: Iterable[str] | None, max_bytes: int) -> list[zipfile.ZipInfo]:
    infos = [i for i in zf.infolist() if not i.is_dir() and (names is None or Path(i.filename).name in names)]
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise LimitError(f"{source} unpacks to {total} bytes; at most {max_bytes} are read")
    return infos


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError)


def read_zip(data: bytes, *, names: Iterable[str], max_bytes: int = MAX_ARCHIVE_BYTES,
             source: str = "the zip") -> dict[str, bytes]:
    """The members of a zip whose base names are in `names` (base name -> bytes), their total declared size
    within `max_bytes` before any is read."""
    names = set(names)
    try:
        with _open_zip(io.BytesIO(data), source) as zf:
            return {Path(i.filename).name: zf.read(i) for i in _members(zf, source, names, max_bytes)}
    except _ZIP_ERRORS as e:
        raise FileFormatError(f"{source} is not a readable zip file ({type(e).__name__}: {e})") from None


def _npy_header(f, source: str, name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) from a .npy header of at most 64 KB, before the data is read."""
    bad = f"{source}: member {name} is not a .npy array"
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise FileFormatError(bad)
    length = int.from_bytes(f.read(2 if magic[6] == 1 else 4), "little")
    if length > 1 << 16:
        raise FileFormatError(f"{bad} (a header of {length} bytes)")
    try:
        header = ast.literal_eval(f.read(length).decode("utf-8" if magic[6] == 3 else "latin1"))
        shape, fortran = header["shape"], header["fortran_order"]
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError, UnicodeDecodeError):
        raise FileFormatError(f"{bad} (its header cannot be read)") from None
    if (not isinstance(shape, tuple) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape)
            or not isinstance(fortran, bool)):
        raise FileFormatError(f"{bad} (shape {shape!r})")
    return shape, fortran, dtype


def read_npz(path: str | os.PathLike, *, max_elements: Callable[[str], int],
             max_bytes: int = MAX_ARCHIVE_BYTES) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (name -> array), each read only after its .npy header gave a plain dtype and
    at most `max_elements(name)` elements, and the members' declared sizes stayed within `max_bytes`."""
    source = str(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fp, _open_zip(fp, source) as zf:
            for info in _members(zf, source, None, max_bytes):
                name = info.filename.removesuffix(".npy")
                with zf.open(info) as f:
                    shape, fortran, dtype = _npy_header(f, source, name)
                    count = math.prod(shape)
                    if dtype.hasobject or count > max_elements(name):
                        raise FileFormatError(f"{source}: array {name} is {dtype} of shape {list(shape)}, which "
                                              "this file does not hold")
                    data = bytearray(count * dtype.itemsize)
                    if f.readinto(data) != len(data) or f.read(1):  # reading to the end checks the CRC
                        raise FileFormatError(f"{source}: array {name} is truncated or longer than its shape")
                out[name] = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    except (*_ZIP_ERRORS, OSError) as e:
        raise FileFormatError(f"{source} is truncated or not an .npz file ({type(e).__name__}: {e})") from None
    return out
