"""Reading zip and npz archives that nobody vouches for: every size from a header before anything is read.

- The central directory is counted before it is parsed: its end record (and the zip64 end record) is read
  here, not by `zipfile`, and the directory is walked entry by entry, so that a directory of 600,000 entries
  behind an end record that claims one is refused after at most `MAX_ARCHIVE_MEMBERS` entries, before
  `zipfile` builds an object per entry.
- A member's declared size bounds what `zipfile` inflates (it stops there and checks the CRC), so members
  are checked by their declared sizes: each against its own limit, all of them against `max_bytes`.
- An npz array's dtype and shape come from its .npy header before its data is inflated: a plain numeric dtype
  (no objects, strings, void or structured types, whose item size a header can set to a gigabyte), at most
  the elements the caller allows for that name, and no more bytes than the member declares.

Errors are `FileFormatError`s (or `LimitError`s) that name the archive.
"""

from __future__ import annotations

import ast
import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from draggan.files import FileFormatError
from draggan.limits import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, LimitError

_END = struct.Struct("<4s4H2IH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sIQI")
_END64 = struct.Struct("<4sQ2H2I4Q")
_ENTRY = struct.Struct("<4s6H3I5H2I")  # central directory entry
NUMPY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what the project's arrays are


@dataclass(frozen=True)
class ZipMember:
    """A central directory entry."""

    name: str
    method: int  # 0 stored, 8 deflated
    compressed: int  # bytes in the archive
    size: int  # bytes once inflated, as declared


def zip_directory(fp: BinaryIO, source: str, *, max_members: int = MAX_ARCHIVE_MEMBERS) -> list[ZipMember]:
    """The entries of the zip in `fp`, read from its end record and central directory (at most `max_members`)."""
    size = fp.seek(0, io.SEEK_END)
    tail_start = max(0, size - (_END.size + 0xFFFF))
    fp.seek(tail_start)
    tail = fp.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        raise FileFormatError(f"{source} is truncated or not a zip file (no end record)")
    _, disk, _, _, entries, cd_size, cd_offset, _ = _END.unpack_from(tail, at)
    end_at = tail_start + at
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:  # zip64: the counts are further back
        locator_at = end_at - _END64_LOCATOR.size
        if locator_at < 0:
            raise FileFormatError(f"{source} is truncated or not a zip file (no zip64 locator)")
        fp.seek(locator_at)
        signature, _, end64_at, _ = _END64_LOCATOR.unpack(fp.read(_END64_LOCATOR.size))
        if signature != b"PK\x06\x07" or not 0 <= end64_at <= locator_at - _END64.size:
            raise FileFormatError(f"{source} is truncated or not a zip file (a broken zip64 locator)")
        fp.seek(end64_at)
        signature, *_, entries, cd_size, cd_offset = _END64.unpack(fp.read(_END64.size))
        if signature != b"PK\x06\x06":
            raise FileFormatError(f"{source} is truncated or not a zip file (a broken zip64 end record)")
        end_at = end64_at
    if entries > max_members:
        raise LimitError(f"{source} holds {entries} members; at most {max_members} are read")
    cd_start = end_at - cd_size  # as zipfile: data may precede the archive (its offsets are then shifted)
    if disk or cd_start < 0:
        raise FileFormatError(f"{source} is truncated, split over disks, or not a zip file")
    fp.seek(cd_start)
    members, read = [], 0
    while read < cd_size:
        if len(members) >= entries:  # the directory goes on past the count its end record gives
            raise FileFormatError(f"{source}: its central directory lists more members than its end record's "
                                  f"{entries} (a corrupt or crafted zip)")
        raw = fp.read(_ENTRY.size)
        if len(raw) < _ENTRY.size or raw[:4] != b"PK\x01\x02":
            raise FileFormatError(f"{source} is truncated or not a zip file (a broken central directory)")
        (_, _, _, _, method, _, _, _, compressed, inflated, name_len, extra_len, comment_len, _, _, _,
         _) = _ENTRY.unpack(raw)
        name = fp.read(name_len)
        extra = fp.read(extra_len)
        fp.seek(comment_len, io.SEEK_CUR)
        read += _ENTRY.size + name_len + extra_len + comment_len
        if not name or b"\0" in name:  # zipfile cuts a name at its first NUL: an empty name breaks it
            raise FileFormatError(f"{source}: a member of its central directory has no name, or a NUL in it (a "
                                  "corrupt or crafted zip)")
        if inflated == 0xFFFFFFFF or compressed == 0xFFFFFFFF:
            inflated, compressed = _zip64_sizes(extra, inflated, compressed, source)
        members.append(ZipMember(name.decode("utf-8", "replace"), method, compressed, inflated))
    if read != cd_size or len(members) != entries:
        raise FileFormatError(f"{source}: its central directory does not match its end record (a corrupt or "
                              "crafted zip)")
    return members


def _zip64_sizes(extra: bytes, inflated: int, compressed: int, source: str) -> tuple[int, int]:
    """The 64-bit sizes of a zip64 extra field (id 1): the fields whose 32-bit value is 0xFFFFFFFF, in order."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == 1:
            values = list(struct.unpack_from(f"<{min(length, len(extra) - at - 4) // 8}Q", extra, at + 4))
            if inflated == 0xFFFFFFFF and values:
                inflated = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            return inflated, compressed
        at += 4 + length
    raise FileFormatError(f"{source}: a member claims zip64 sizes it does not give")


def _open_zip(fp: BinaryIO, source: str, names: Iterable[str] | None, max_bytes: int,
              max_member_bytes: Mapping[str, int] | None = None) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """A ZipFile (once its directory was counted) and its file members whose base names are in `names` (None:
    all), their declared sizes within their own limits and, together, within `max_bytes`."""
    directory = zip_directory(fp, source)
    limits_by_name = dict(max_member_bytes or {})
    wanted = [m for m in directory if not m.name.endswith("/") and (names is None or Path(m.name).name in names)]
    total = 0
    for m in wanted:
        total += m.size
        limit = limits_by_name.get(Path(m.name).name)
        if limit is not None and m.size > limit:
            raise LimitError(f"{source}: member {Path(m.name).name} unpacks to {m.size} bytes; at most {limit} are "
                             "read")
    if total > max_bytes:
        raise LimitError(f"{source} unpacks to {total} bytes; at most {max_bytes} are read")
    fp.seek(0)
    zf = zipfile.ZipFile(fp)
    infos = [i for i in zf.infolist() if not i.is_dir() and (names is None or Path(i.filename).name in names)]
    return zf, infos


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError,
               struct.error, ValueError, zlib.error)  # zlib.error: a corrupt deflate stream


def read_zip(data: bytes, *, names: Iterable[str], max_bytes: int = MAX_ARCHIVE_BYTES,
             max_member_bytes: Mapping[str, int] | None = None, source: str = "the zip") -> dict[str, bytes]:
    """The members of a zip whose base names are in `names` (base name -> bytes), each member's declared size
    within `max_member_bytes[name]` (where given) and their total within `max_bytes` before any is read."""
    names = set(names)
    try:
        zf, infos = _open_zip(io.BytesIO(data), source, names, max_bytes, max_member_bytes)
        with zf:
            return {Path(i.filename).name: zf.read(i) for i in infos}
    except (FileFormatError, LimitError):
        raise
    except _ZIP_ERRORS as e:
        raise FileFormatError(f"{source} is not a readable zip file ({type(e).__name__}: {e})") from None


def _npy_header(f, source: str, name: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header bytes) from a .npy header of at most 64 KB, before the data is read."""
    bad = f"{source}: member {name} is not a .npy array"
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise FileFormatError(bad)
    width = 2 if magic[6] == 1 else 4
    length = int.from_bytes(f.read(width), "little")
    if length > 1 << 16:
        raise FileFormatError(f"{bad} (a header of {length} bytes)")
    try:
        header = ast.literal_eval(f.read(length).decode("utf-8" if magic[6] == 3 else "latin1"))
        shape, fortran, descr = header["shape"], header["fortran_order"], header["descr"]
        if not isinstance(descr, str):  # a list: a structured dtype, whose fields could hold anything
            raise TypeError
        dtype = np.lib.format.descr_to_dtype(descr)
    except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError, UnicodeDecodeError):
        raise FileFormatError(f"{bad} (its header cannot be read, or its dtype is not a plain number)") from None
    if (not isinstance(shape, tuple) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape)
            or not isinstance(fortran, bool)):
        raise FileFormatError(f"{bad} (shape {shape!r})")
    return shape, fortran, dtype, 8 + width + length


def read_npz(path: str | os.PathLike, *, max_elements: Callable[[str], int],
             max_bytes: int = MAX_ARCHIVE_BYTES, kinds: str = NUMPY_KINDS) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (name -> array). Each is read only after its .npy header gave a dtype of one
    of `kinds` (at most 8 bytes an item), at most `max_elements(name)` elements (0: the name is refused), and
    no more bytes than the member declares; the members' declared sizes together stay within `max_bytes`."""
    source = str(path)
    out: dict[str, np.ndarray] = {}
    try:
        with open(path, "rb") as fp:
            zf, infos = _open_zip(fp, source, None, max_bytes)
            with zf:
                for info in infos:
                    name = info.filename.removesuffix(".npy")
                    with zf.open(info) as f:
                        shape, fortran, dtype, header = _npy_header(f, source, name)
                        count = math.prod(shape)
                        if (dtype.kind not in kinds or dtype.itemsize > 8 or dtype.fields is not None
                                or dtype.subdtype is not None or count > max_elements(name)):
                            raise FileFormatError(f"{source}: array {name} is {dtype} of shape {list(shape)}, which "
                                                  "this file does not hold")
                        nbytes = count * dtype.itemsize
                        if nbytes + header != info.file_size:
                            raise FileFormatError(f"{source}: array {name} declares {nbytes} bytes of data, its "
                                                  f"member {info.file_size - header}")
                        data = bytearray(nbytes)
                        if f.readinto(data) != len(data) or f.read(1):  # reading to the end checks the CRC
                            raise FileFormatError(f"{source}: array {name} is truncated or longer than its shape")
                    out[name] = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    except (FileFormatError, LimitError):
        raise
    except (*_ZIP_ERRORS, OSError) as e:
        raise FileFormatError(f"{source} is truncated or not an .npz file ({type(e).__name__}: {e})") from None
    return out
