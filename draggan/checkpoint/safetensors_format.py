"""The project's own checkpoint format: one safetensors file whose header metadata holds the init kwargs as
JSON (`save_generator` / `generator_from_safetensors`).

The header is checked against the file before any weight is read (a known dtype, a shape of whole numbers,
data offsets inside the file whose length is the shape's), and against the generator its settings plan. A
safetensors file is recognised by its structure (an 8-byte little-endian header length, then a JSON
object), never by a single byte.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.generator_kwargs import build_generator, check_state_shapes, planned_shapes
from draggan.checkpoint.pickle_reader import plain_data
from draggan.files import FileFormatError, atomic_write, parse_json
from draggan.networks import Generator

SAFE_FORMAT_NAME = "draggan-generator"
SAFE_FORMAT_VERSION = "1"


def save_generator(G: Generator, path: str | os.PathLike, *, extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write `G` in the project's safe format (safetensors, init kwargs in the header), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": SAFE_FORMAT_NAME, "version": SAFE_FORMAT_VERSION,
                "init_kwargs": json.dumps(plain_data(G.init_kwargs)), **(extra_metadata or {})}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in G.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # what a generator's weights may be stored as


def safetensors_header_length(head: bytes, file_size: int) -> int | None:
    """The header length if `head` (the file's first 9 bytes) starts a safetensors file of `file_size` bytes:
    an 8-byte little-endian length that fits the file and the limit, then a JSON object."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    n = int.from_bytes(head[:8], "little")
    return n if 2 <= n <= min(file_size - 8, limits.MAX_SAFETENSORS_HEADER) else None


def read_safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a safetensors file, every tensor entry checked against the file: a known dtype, a
    shape of whole numbers, and data offsets whose length is the shape's and that lie inside the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(9)
        n = safetensors_header_length(head, size)
        if n is None:
            raise CheckpointError(f"{path}: not a readable safetensors file (no header that fits its {size} bytes)")
        f.seek(8)
        raw = f.read(n)
    try:  # 27 bytes of memory per byte of `[],` unless its structure is bounded first
        header = parse_json(raw, source=f"the safetensors header of {path}", max_bytes=limits.MAX_SAFETENSORS_HEADER)
    except FileFormatError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    data_size = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise CheckpointError(f"{path}: the safetensors metadata is not a mapping of strings")
            continue
        ok = isinstance(entry, dict) and entry.get("dtype") in _SAFETENSORS_ITEMSIZE
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and len(shape) <= 8 and all(type(d) is int and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
        if not ok or not 0 <= offsets[0] <= offsets[1] <= data_size \
                or offsets[1] - offsets[0] != math.prod(shape) * _SAFETENSORS_ITEMSIZE[entry["dtype"]]:
            raise CheckpointError(f"{path}: the safetensors entry {name!r} does not fit the file (truncated or corrupt)")
    return header


def read_safe_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a safetensors file (raises CheckpointError if it is not one)."""
    return dict(read_safetensors_header(path).get("__metadata__") or {})


def _init_kwargs_from_json(text: str, source: str) -> dict[str, Any]:
    try:
        kwargs = parse_json(text, source=f"the init_kwargs of {source}")
    except FileFormatError as e:
        raise CheckpointError(str(e)) from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{source}: its init_kwargs are a {type(kwargs).__name__}, not a JSON object")
    return plain_data(kwargs)


def generator_from_safetensors(path: str | os.PathLike) -> Generator:
    """Load a generator written by `save_generator`: the header is checked against the planned generator
    before any weight is read."""
    from safetensors.torch import load_file

    header = read_safetensors_header(path)
    meta = header.pop("__metadata__", None) or {}
    if meta.get("format") != SAFE_FORMAT_NAME or "init_kwargs" not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not a generator saved by this project")
    kwargs = _init_kwargs_from_json(meta["init_kwargs"], str(path))
    check_state_shapes({k: tuple(v["shape"]) for k, v in header.items()}, planned_shapes(kwargs, str(path)), str(path))
    not_float = sorted(k for k, v in header.items() if v["dtype"] not in _FLOAT_DTYPES)
    if not_float:
        raise CheckpointError(f"{path}: weights {not_float[:3]} are not floating point")
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise CheckpointError(f"{path}: the weights are truncated or corrupt ({e})") from e
    return build_generator(kwargs, state, source=str(path))

