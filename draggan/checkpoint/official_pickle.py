"""Official PyTorch network pickles (persistence records of `torch_utils.persistence`) -> `Generator`.

The record of an official generator holds its class name, its init arguments and its module state; the
generator is rebuilt from them by the project's own classes, its architecture read from the record (the
init kwargs and the weights' shapes), never from the file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.generator_kwargs import build_generator
from draggan.checkpoint.pickle_arrays import Built
from draggan.checkpoint.pickle_reader import PersistentRecord
from draggan.networks import Generator


def _state_dict_of(record: PersistentRecord, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a persistence record and its children, by dotted name."""
    if depth > limits.MAX_KWARGS_DEPTH:
        raise CheckpointError(f"the network's modules are nested more than {limits.MAX_KWARGS_DEPTH} levels deep")
    out: dict[str, torch.Tensor] = {}
    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set") or ()
    if not isinstance(non_persistent, (set, frozenset, list, tuple)):
        raise CheckpointError(f"{prefix or 'the network'}: its non-persistent buffers are a "
                              f"{type(non_persistent).__name__}, not a set of names")
    non_persistent = set(non_persistent)
    for group in ("_parameters", "_buffers", "_modules"):
        if not isinstance(state.get(group) or {}, Mapping):
            raise CheckpointError(f"{prefix or 'the network'}: its {group} is not a mapping")
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or name in non_persistent:
                continue
            if not isinstance(value, Built) or not isinstance(value.value, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"{prefix}{name} is not a network module of the official code")
        out.update(_state_dict_of(child, prefix + name + ".", depth + 1))
    return out


_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")


def generator_from_record(record: Any) -> Generator:
    """Rebuild a `Generator` from the persistence record of an official StyleGAN2 generator."""
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(f"expected a network of the official code, found {type(record).__name__}")
    if record.class_name != "Generator":
        raise CheckpointError(f"expected a Generator, found a {record.class_name}")
    synthesis = record.submodules.get("synthesis")
    if not isinstance(synthesis, PersistentRecord) or "b4" not in synthesis.submodules:
        names = sorted(synthesis.submodules) if isinstance(synthesis, PersistentRecord) else []
        kind = "a StyleGAN3 (alias-free) generator" if "input" in names else "not a StyleGAN2 generator"
        raise CheckpointError(f"this network is {kind} (synthesis layers {names[:4]}...); "
                              "only StyleGAN2 generators are supported")
    kwargs = dict(zip(_POSITIONAL, record.init_args))
    kwargs.update(record.init_kwargs)
    state = _state_dict_of(record)
    const = state.get("synthesis.b4.const")
    if const is not None and const.ndim == 3 and const.shape[1] != const.shape[2]:
        if const.shape[1] != 2 * const.shape[2]:
            raise CheckpointError(f"unsupported aspect ratio: 4x4 block constant of shape {list(const.shape)}")
        kwargs["square"] = False  # StyleGAN-Human: height = 2 x width
    return build_generator(kwargs, state, source="the pickle")
