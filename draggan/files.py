"""Reading and writing the project's files safely: atomic writes, and JSON read under the limits of
`draggan.limits` with errors that name the file (zip and npz archives: `draggan.archives`).

JSON is parsed only after its text was measured: its size, then (from the text itself, strings left out)
how many lists and objects it opens, how many values it separates and how deeply it nests. Parsing
`[],` costs about 25 bytes of memory per byte of text and a deep nesting overflows the parser's stack, so
a file of a few MB of brackets is refused by these counts before `json` builds anything.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from draggan.limits import MAX_JSON_BYTES, MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, MAX_JSON_VALUES


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


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_json(data: bytes | str, *, source: str = "the JSON text", max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH,  # levels of nested lists and objects
               max_containers: int = MAX_JSON_CONTAINERS,  # lists and objects, all levels together
               max_values: int = MAX_JSON_VALUES,  # values, all levels together (about: commas and containers)
               ) -> Any:
    """The JSON value of `data`, once its size, its number of containers and values and its depth are within
    the limits (measured on the text, strings blanked out); else a FileFormatError naming `source`. JSON's
    NaN and Infinity are not numbers here either: they are refused as invalid JSON."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise FileFormatError(f"{source} is {len(raw)} bytes; at most {max_bytes} are read")
    text = _STRING.sub(b'""', raw)
    containers = text.count(b"[") + text.count(b"{")
    values = containers + text.count(b",") + text.count(b":")
    if containers > max_containers or values > max_values:
        raise FileFormatError(f"{source} holds {containers} lists and objects and about {values} values; at most "
                              f"{max_containers} and {max_values} are read")
    brackets = np.frombuffer(text.translate(None, _NOT_BRACKETS), np.uint8)
    if len(brackets):
        steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
        depth = int(np.cumsum(steps).max())
        if depth > max_depth:
            raise FileFormatError(f"{source} nests lists and objects {depth} levels deep; at most {max_depth} are read")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too many digits: ValueErrors
        raise FileFormatError(f"{source} is truncated or not valid JSON ({type(e).__name__}: {str(e)[:120]})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: str | os.PathLike, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `path` (`parse_json`'s limits); a missing, oversized, truncated or invalid file is a
    FileFormatError naming it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileFormatError(f"{path} is {size} bytes; at most {max_bytes} are read")
        return parse_json(path.read_bytes(), source=str(path), max_bytes=max_bytes)
    except OSError as e:
        raise FileFormatError(f"{path} cannot be read ({e.strerror or e})") from None
