"""The arrays, tensors and storages a network pickle may build, each checked before it is allocated.

The restricted unpickler (`pickle_reader`) resolves numpy's and torch's reconstructors to these functions
instead of the originals, whose inputs a crafted pickle controls:

- numpy dtypes are plain numbers only (bool, integers, floats): an object dtype whose pickled flags say
  "read me from raw bytes" makes numpy take bytes as object pointers (a crash), and a void or string dtype
  can claim an item size of a gigabyte;
- `_reconstruct` builds only the empty array that numpy's own pickles start from (any other shape is
  allocated at once, 2^27 objects = 1 GB), and that array's state must carry exactly the bytes its shape
  and dtype need; `numpy.ndarray` itself cannot be called (`ndarray(shape, dtype, buffer, offset, strides)`
  makes a stride-0 view of 2^28 floats out of 4 bytes, and any copy of it costs 1 GB);
- a numpy scalar is read from exactly its item size of bytes;
- a tensor's view may not reach outside its storage nor hold more elements than the storage (a stride-0
  `expand` of one element to 20000 x 20000 costs nothing to unpickle but 1.6 GB to any copy);
- a tensor's storage, a small `torch.save` file, is read weights-only after its own pickles were scanned
  (`pickle_scan`) and, in the zip format, after its directory showed stored (not deflated) members of no
  more bytes than the file: a deflated record of 1 GB in 1 MB would be inflated by torch before it
  compares the record's size with the storage's;
- tensors, parameters and storages are handed to the rest of the pickle inside a `Built`, whose state
  cannot be set: the pickle opcode BUILD on a tensor calls `Tensor.__setstate__`, which with four values
  is `set_(storage, offset, size, stride)` (a stride-0 view of any size, or a storage resized to it).
"""

from __future__ import annotations

import io
import math
import warnings
import zipfile

import numpy as np
import torch

from draggan.archives import zip_directory
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.pickle_scan import scan_pickle
from draggan.files import FileFormatError
from draggan.limits import LimitError

NUMBER_DTYPES = ("b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8")  # without byte order
_NUMPY_CORE = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
MAX_STORAGE_MEMBERS = 64  # members of the zip of one pickled storage (torch writes 7)
LEGACY_STORAGE_PICKLES = 5  # a legacy torch.save file: magic number, protocol, system info, the object, its keys


class Built:
    """A tensor, parameter or storage as the unpickler holds it: `value`, out of the reach of BUILD."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __setstate__(self, state):
        raise CheckpointError("the pickle sets the state of a tensor or storage after building it (a tensor's "
                              "__setstate__ makes a view of any size); torch's own pickles never do")


def _inner(value, kind: type, what: str):
    if not isinstance(value, Built) or not isinstance(value.value, kind):
        inner = value.value if isinstance(value, Built) else value
        raise CheckpointError(f"{what} in the pickle is built on a {type(inner).__name__}, not a {kind.__name__}")
    return value.value


def numpy_dtype(spec, align=False, copy=False) -> np.dtype:
    """`numpy.dtype(spec, align, copy)` for the dtypes of numbers only."""
    if not isinstance(spec, str) or spec not in NUMBER_DTYPES or not isinstance(align, bool) \
            or not isinstance(copy, bool):
        raise CheckpointError(f"the pickle holds an array of dtype {str(spec)[:40]!r}; a network's weights are plain "
                              "numbers (bool, integers, floats)")
    return np.dtype(spec, align, copy)


def plain_dtype(dtype) -> np.dtype:
    """The canonical dtype equal to `dtype` if it is a plain number as numpy itself pickles it (a dtype whose
    pickled state changed its item size or flags is not); else a CheckpointError."""
    if not isinstance(dtype, np.dtype) or dtype.str[1:] not in NUMBER_DTYPES or dtype.names is not None \
            or dtype.subdtype is not None:
        raise CheckpointError(f"the pickle holds an array of dtype {str(dtype)[:40]!r}; a network's weights are plain "
                              "numbers (bool, integers, floats)")
    canonical = np.dtype(dtype.str)
    if dtype.itemsize != canonical.itemsize or dtype.flags != canonical.flags or dtype.hasobject:
        raise CheckpointError(f"the pickle holds a crafted dtype {dtype.str!r} (item size {dtype.itemsize}, flags "
                              f"{dtype.flags}): not numpy's own")
    return canonical


class NdarrayName:
    """What `numpy.ndarray` resolves to: an argument of `_reconstruct`, never a callable."""

    def __call__(self, *args, **kwargs):
        raise CheckpointError("the pickle calls numpy.ndarray directly (a view of any shape and strides over its "
                              "bytes); numpy's own pickles never do")


NDARRAY = NdarrayName()


class CheckedArray(np.ndarray):
    """The array numpy's pickles start from; its state is checked before numpy reads it."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise CheckpointError("the pickle holds an array whose state is not numpy's (version, shape, dtype, "
                                  "order, bytes)")
        version, shape, dtype, fortran, data = state
        dtype = plain_dtype(dtype)
        if (version != 1 or not isinstance(shape, tuple) or len(shape) > 32
                or not all(type(n) is int and n >= 0 for n in shape) or not isinstance(fortran, bool)):
            raise CheckpointError(f"the pickle holds an array of a malformed shape {str(shape)[:60]}")
        if not isinstance(data, bytes) or len(data) != math.prod(shape) * dtype.itemsize:
            got = f"{len(data)} bytes" if isinstance(data, bytes) else f"a {type(data).__name__}"
            raise CheckpointError(f"the pickle holds an array of shape {list(shape)} and dtype {dtype} whose data is "
                                  f"{got}, not {math.prod(shape) * dtype.itemsize} bytes")
        super().__setstate__((version, shape, dtype, fortran, data))


def reconstruct_array(subtype, shape, dtype) -> CheckedArray:
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`, the only call numpy's pickles make."""
    if subtype is not NDARRAY or shape != (0,) or dtype not in (b"b", "b"):
        raise CheckpointError(f"the pickle builds an array of shape {str(shape)[:60]} before its data (numpy's own "
                              "pickles start from an empty array)")
    return _NUMPY_CORE._reconstruct(CheckedArray, (0,), b"b")


def numpy_scalar(dtype, data) -> np.generic:
    """`numpy.core.multiarray.scalar(dtype, bytes)` for a plain number of exactly its item size."""
    dtype = plain_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError(f"the pickle holds a numpy {dtype} scalar made of {type(data).__name__} "
                              f"{len(data) if isinstance(data, bytes) else ''}, not {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype)[0]


def storage_from_bytes(data: bytes) -> Built:
    """`torch.storage._load_from_bytes`: the storage of a pickled tensor, a small `torch.save` file, read
    weights-only once its own sizes were checked (the module docstring says which)."""
    if not isinstance(data, bytes):
        raise CheckpointError(f"a tensor storage in the pickle is a {type(data).__name__}, not bytes")
    try:
        if data[:2] == b"PK":
            members = zip_directory(io.BytesIO(data), "a tensor storage in the pickle", max_members=MAX_STORAGE_MEMBERS)
            packed = [m.name for m in members if m.method != 0 or m.compressed != m.size]
            if packed or sum(m.size for m in members) > len(data):
                raise CheckpointError(f"a tensor storage in the pickle holds compressed records ({packed[:2]}); "
                                      "torch.save stores them as they are")
            with zipfile.ZipFile(io.BytesIO(data)) as zf:  # its object's pickle, stored: no larger than `data`
                for name in (m.name for m in members if m.name.endswith("/data.pkl")):
                    scan_pickle(zf.read(name), source="a tensor storage in the pickle")
        else:  # the legacy format: five pickles, then the storages' bytes
            at = 0
            for _ in range(LEGACY_STORAGE_PICKLES):
                at = scan_pickle(data, at, source="a tensor storage in the pickle")["end"]
    except (FileFormatError, LimitError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"a tensor storage in the pickle is not a torch.save file: {e}") from None
    try:
        return Built(torch.load(io.BytesIO(data), weights_only=True, map_location="cpu"))
    except Exception as e:  # noqa: BLE001 - any failure here means a corrupt or hostile file
        raise CheckpointError(f"a tensor storage in the pickle could not be read safely: "
                              f"{' '.join(str(e).split())[:200]}") from e


def rebuild_tensor(storage, storage_offset, size, stride, *args) -> Built:
    """`torch._utils._rebuild_tensor_v2`, refusing views that reach outside their storage or repeat its elements."""
    storage = _inner(storage, torch.storage.TypedStorage, "a tensor")
    if (not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) or len(size) > 8
            or not all(type(v) is int and v >= 0 for v in size + stride) or type(storage_offset) is not int):
        raise CheckpointError(f"a tensor in the pickle has a malformed size {str(size)[:60]} or stride "
                              f"{str(stride)[:60]}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage's deprecation notice
        available = storage.size()
    numel = math.prod(size)
    if numel:
        extent = storage_offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1
        if storage_offset < 0 or extent > available or numel > available:
            raise CheckpointError(f"a tensor in the pickle claims {list(size)} = {numel} elements (stride "
                                  f"{list(stride)}) of a storage of {available}: it is not a network's weight")
    return Built(torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *args))


def rebuild_parameter(data, requires_grad, backward_hooks) -> Built:
    """`torch._utils._rebuild_parameter` of a tensor built by `rebuild_tensor`."""
    return Built(torch._utils._rebuild_parameter(_inner(data, torch.Tensor, "a parameter"), requires_grad,
                                                 backward_hooks))


def rebuild_parameter_with_state(data, requires_grad, backward_hooks, state) -> Built:
    """`torch._utils._rebuild_parameter_with_state` of a tensor built by `rebuild_tensor`."""
    return Built(torch._utils._rebuild_parameter_with_state(_inner(data, torch.Tensor, "a parameter"), requires_grad,
                                                            backward_hooks, state))
