"""Reading a network pickle as data: a restricted unpickler that runs no code from the file.

Official network pickles (StyleGAN2-ADA PyTorch, the StyleGAN3 repository's `stylegan2` networks, the
self-distilled models, StyleGAN-Human, and the original TensorFlow StyleGAN2 pickles) embed the source code
of their network classes; unpickling them the normal way imports and runs that code. This unpickler lets
through only

- the persistence records of the official `torch_utils.persistence` (read as plain data: class name, init
  arguments and state; the embedded source is never compiled),
- the TensorFlow `dnnlib.tflib.network.Network` records (read as data: kwargs and variables),
- tensors, parameters and their storages (the storages are read by `torch.load(weights_only=True)`),
- numpy arrays and scalars, and plain containers,

and refuses every other global with a `CheckpointError`. Before it runs, the scan of the pickle's opcodes
(`pickle_scan`) bounds the number of values, the memo and the nesting; numpy's and torch's reconstructors
are replaced by versions that check sizes before allocating (`pickle_arrays`).
"""

from __future__ import annotations

import collections
import mmap
import os
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.pickle_arrays import (NDARRAY, numpy_dtype, numpy_scalar, rebuild_parameter,
                                             rebuild_parameter_with_state, rebuild_tensor, reconstruct_array,
                                             storage_from_bytes)
from draggan.checkpoint.pickle_scan import scan_pickle

# --------------------------------------------------------------------------------------------
# Records standing in for the official classes while unpickling.


def _of_kind(value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """`value` if it is of `kinds` (plain containers: an array would be boxed element by element when copied)."""
    if not isinstance(value, kinds):
        raise CheckpointError(f"{what} in the pickle is a {type(value).__name__}, not a "
                              f"{getattr(kinds, '__name__', None) or ' or '.join(k.__name__ for k in kinds)}")
    return value


class EasyDictRecord(dict):
    """`dnnlib.EasyDict`: a dict with attribute access, read as a plain dict."""

    def __init__(self, *args, **kwargs):
        super().__init__(*(_of_kind(a, (Mapping, list, tuple), "an EasyDict's items") for a in args), **kwargs)


class PersistentRecord:
    """An object saved by the official `torch_utils.persistence` (its embedded source is ignored)."""

    def __init__(self, class_name: str, state: Mapping[str, Any]):
        self.class_name = class_name
        self.state = dict(_of_kind(state, Mapping, "a persistence record's state"))

    @property
    def init_args(self) -> tuple:
        return tuple(_of_kind(self.state.get("_init_args", ()), (list, tuple), "a network's init args"))

    @property
    def init_kwargs(self) -> dict:
        return plain_data(self.state.get("_init_kwargs", {}))

    @property
    def submodules(self) -> dict[str, Any]:
        return dict(_of_kind(self.state.get("_modules", {}), Mapping, "a network's modules"))


class TFNetworkRecord:
    """A `dnnlib.tflib.network.Network` of the TensorFlow StyleGAN2 (its embedded source is ignored)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.state = dict(_of_kind(state, Mapping, "a TensorFlow network's state"))


def _persistent_record(meta: Mapping[str, Any]) -> PersistentRecord:
    if not isinstance(meta, Mapping) or meta.get("type") != "class" or "class_name" not in meta:
        raise CheckpointError("malformed persistence record in the pickle")
    state = meta.get("state")
    return PersistentRecord(str(meta["class_name"]), {} if state is None else state)


def _from_items(kind: type):
    """`kind(items)` for a list or tuple of items only, as pickles of sets, OrderedDicts and torch.Size make it:
    `set(array)` of a 4 MB array would box a million numpy scalars (70 MB)."""
    def build(items=()):
        if not isinstance(items, (list, tuple)):
            raise CheckpointError(f"the pickle builds a {kind.__name__} from a {type(items).__name__}, not from a list "
                                  "of its items")
        return kind(items)

    build.__name__ = kind.__name__
    return build


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _from_items(collections.OrderedDict),
    ("builtins", "set"): _from_items(set),
    ("builtins", "frozenset"): _from_items(frozenset),
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): storage_from_bytes,
    ("torch", "Size"): _from_items(torch.Size),
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): numpy_dtype,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("dnnlib", "EasyDict"): EasyDictRecord,
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = reconstruct_array
    _ALLOWED_GLOBALS[(_module, "scalar")] = numpy_scalar
for _dtype_class in ("Float32DType", "Float64DType", "Int64DType", "Int32DType", "UInt8DType", "BoolDType"):
    if hasattr(np, "dtypes") and hasattr(np.dtypes, _dtype_class):
        _ALLOWED_GLOBALS[("numpy.dtypes", _dtype_class)] = getattr(np.dtypes, _dtype_class)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `_ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            shown = f"{module}.{name}"
            raise CheckpointError(
                f"refusing to load {shown[:120]!r} from the pickle: only network weights, tensors and plain "
                "data are allowed (the pickle is not an official network pickle, or it carries code)"
            ) from None

    def persistent_load(self, pid):
        raise CheckpointError("the pickle uses persistent ids (it is a torch.save file, not a network pickle)")


def read_network_pickle(path: str | os.PathLike) -> Any:
    """Unpickle an official network pickle with the restricted unpickler (no code is run), once the scan of its
    opcodes (`pickle_scan`) bounded what it builds."""
    with open(path, "rb") as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                scan_pickle(data, source=str(path))
        except ValueError:  # an empty file cannot be mapped
            raise CheckpointError(f"{path}: the file is empty") from None
        f.seek(0)
        try:
            return RestrictedUnpickler(f).load()
        except CheckpointError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
                AttributeError, RuntimeError, MemoryError, OverflowError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: the pickle is truncated or corrupt ({type(e).__name__}: {e})") from e



def plain_data(obj: Any, _depth: int = 0, _budget: list[int] | None = None) -> Any:
    """EasyDicts and OrderedDicts to plain dicts, numpy scalars to Python numbers, recursively; a structure
    nested more than MAX_KWARGS_DEPTH levels (a self-referencing list, say) or holding more than
    MAX_KWARGS_ITEMS values is a CheckpointError."""
    budget = [limits.MAX_KWARGS_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if _depth > limits.MAX_KWARGS_DEPTH or budget[0] < 0:
        raise CheckpointError(f"the generator settings are nested more than {limits.MAX_KWARGS_DEPTH} levels deep "
                              f"or hold more than {limits.MAX_KWARGS_ITEMS} values (a recursive structure?)")
    if isinstance(obj, Mapping):
        return {str(k): plain_data(v, _depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_data(v, _depth + 1, budget) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj

