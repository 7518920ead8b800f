"""Loading generators from checkpoints, safely: a checkpoint is data, never code.

A checkpoint is an official network pickle (PyTorch or TensorFlow StyleGAN2; read by the restricted
unpickler of `pickle_reader`, converted by `official_pickle` or `tf_pickle`) or a file of the project's own
safetensors format (`safetensors_format`). The generator is rebuilt from its init arguments and weights with
the project's own classes; its architecture comes from the content of the file (the init kwargs and the
weights' shapes), never from the file name. Sizes are validated before anything is allocated
(`generator_kwargs`, with the limits of `draggan.limits`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.generator_kwargs import (build_generator, check_generator_kwargs, check_state_shapes,
                                                 planned_shapes)
from draggan.checkpoint.official_pickle import generator_from_record
from draggan.checkpoint.pickle_reader import (PersistentRecord, RestrictedUnpickler, TFNetworkRecord, plain_data,
                                              read_network_pickle)
from draggan.checkpoint.safetensors_format import (SAFE_FORMAT_NAME, SAFE_FORMAT_VERSION, generator_from_safetensors,
                                                   read_safe_metadata, read_safetensors_header, save_generator,
                                                   safetensors_header_length)
from draggan.checkpoint.tf_pickle import generator_from_tf, tf_generator_kwargs
from draggan.networks import Generator

__all__ = ["SAFE_FORMAT_NAME", "SAFE_FORMAT_VERSION", "CheckpointError", "PersistentRecord", "RestrictedUnpickler",
           "TFNetworkRecord", "build_generator", "check_generator_kwargs", "check_state_shapes", "generator_from_pickle",
           "generator_from_record", "generator_from_safetensors", "generator_from_tf", "load_generator_file",
           "planned_shapes", "plain_data", "read_network_pickle", "read_safe_metadata", "read_safetensors_header",
           "save_generator", "sniff_format", "tf_generator_kwargs"]


def generator_from_pickle(path: str | os.PathLike) -> Generator:
    """The EMA generator of an official network pickle (PyTorch or TensorFlow), without running its code."""
    data = read_network_pickle(path)
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data):
        return generator_from_tf(data[2])  # (G, D, Gs): Gs is the moving average
    if isinstance(data, TFNetworkRecord):
        return generator_from_tf(data)
    if isinstance(data, Mapping):
        if "G_ema" not in data:
            raise CheckpointError(f"{path}: the pickle has no 'G_ema' (keys: {sorted(map(str, data))[:8]})")
        return generator_from_record(data["G_ema"])
    if isinstance(data, PersistentRecord):
        return generator_from_record(data)
    raise CheckpointError(f"{path}: the pickle holds a {type(data).__name__}, not a network pickle")



def sniff_format(path: str | os.PathLike) -> str:
    """'safetensors', 'pickle' or 'torch-zip', from the structure of the file's start (a safetensors
    header length can begin with any byte, 0x80 included, so that is tested first)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if head[:2] == b"PK":
        return "torch-zip"
    if safetensors_header_length(head, size) is not None:
        return "safetensors"
    if head[0] == 0x80:
        return "pickle"
    claimed = int.from_bytes(head[:8], "little")
    if head[8:9] == b"{" and limits.MAX_SAFETENSORS_HEADER < claimed <= size - 8:
        raise CheckpointError(f"{path}: a safetensors header of {claimed} bytes; at most {limits.MAX_SAFETENSORS_HEADER} "
                              "are read (a generator's takes about 50 KB)")
    raise CheckpointError(f"{path}: not a network pickle nor a safetensors file (starts with {head[:8]!r})")


def load_generator_file(path: str | os.PathLike) -> Generator:
    """A generator from a local file in any supported format, on the CPU, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    kind = sniff_format(path)
    if kind == "torch-zip":
        raise CheckpointError(f"{path}: a torch.save archive; convert it with scripts/export.py or save the "
                              "generator with draggan.save_generator")
    try:
        G = generator_from_safetensors(path) if kind == "safetensors" else generator_from_pickle(path)
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError,
            ZeroDivisionError, MemoryError) as e:  # a malformed value that the checks above did not name
        raise CheckpointError(f"{path}: a malformed checkpoint ({type(e).__name__}: {e})") from e
    return G.eval().requires_grad_(False)
