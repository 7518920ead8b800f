"""Loading generators from checkpoints, safely: a checkpoint is data, never code.

Official network pickles (StyleGAN2-ADA PyTorch, the StyleGAN3 repository's `stylegan2` networks,
the self-distilled models, StyleGAN-Human, and the original TensorFlow StyleGAN2 pickles) embed the
source code of their network classes. Unpickling them the normal way imports and runs that code.
Here a restricted unpickler lets through only

- the persistence records of the official `torch_utils.persistence` (read as plain data:
  class name, init arguments and state; the embedded source is never compiled),
- the TensorFlow `dnnlib.tflib.network.Network` records (read as data: kwargs and variables),
- tensors, parameters and their storages (the storages are read by `torch.load(weights_only=True)`),
- numpy arrays and scalars, and plain containers,

and refuses every other global with a `CheckpointError`. The generator is then rebuilt from its
init arguments and weights with the project's own classes. The architecture comes from the content
of the pickle (the init kwargs and the weights' shapes), never from the file name.

The project's own format is a single safetensors file whose header metadata holds the init
kwargs as JSON (`save_generator` / `load_generator_file`).
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.networks import Generator

SAFE_FORMAT_NAME = "draggan-generator"
SAFE_FORMAT_VERSION = "1"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, unsafe or not a supported generator."""


# --------------------------------------------------------------------------------------------
# Records standing in for the official classes while unpickling.


class EasyDictRecord(dict):
    """`dnnlib.EasyDict`: a dict with attribute access, read as a plain dict."""


class PersistentRecord:
    """An object saved by the official `torch_utils.persistence` (its embedded source is ignored)."""

    def __init__(self, class_name: str, state: Mapping[str, Any]):
        self.class_name = class_name
        self.state = dict(state)

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args", ()))

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs", {}))

    @property
    def submodules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules", {}))


class TFNetworkRecord:
    """A `dnnlib.tflib.network.Network` of the TensorFlow StyleGAN2 (its embedded source is ignored)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)


def _persistent_record(meta: Mapping[str, Any]) -> PersistentRecord:
    if not isinstance(meta, Mapping) or meta.get("type") != "class" or "class_name" not in meta:
        raise CheckpointError("malformed persistence record in the pickle")
    return PersistentRecord(str(meta["class_name"]), meta.get("state") or {})


def _storage_from_bytes(data: bytes):
    """Storages inside pickled tensors are small `torch.save` files: read them weights-only."""
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any failure here means a corrupt or hostile file
        raise CheckpointError(f"a tensor storage in the pickle could not be read safely: {e}") from e


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch", "Size"): torch.Size,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("dnnlib", "EasyDict"): EasyDictRecord,
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
}
_NUMPY_MULTIARRAY = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = _NUMPY_MULTIARRAY._reconstruct
    _ALLOWED_GLOBALS[(_module, "scalar")] = _NUMPY_MULTIARRAY.scalar
for _dtype_class in ("Float32DType", "Float64DType", "Int64DType", "Int32DType", "UInt8DType", "BoolDType"):
    if hasattr(np, "dtypes") and hasattr(np.dtypes, _dtype_class):
        _ALLOWED_GLOBALS[("numpy.dtypes", _dtype_class)] = getattr(np.dtypes, _dtype_class)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in `_ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"refusing to load '{module}.{name}' from the pickle: only network weights, tensors and plain "
                "data are allowed (the pickle is not an official network pickle, or it carries code)"
            ) from None

    def persistent_load(self, pid):
        raise CheckpointError("the pickle uses persistent ids (it is a torch.save file, not a network pickle)")


def read_network_pickle(path: str | os.PathLike) -> Any:
    """Unpickle an official network pickle with the restricted unpickler (no code is run)."""
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f).load()
        except CheckpointError:
            raise
        except (EOFError, pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError,
                AttributeError, RuntimeError, MemoryError, OverflowError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: the pickle is truncated or corrupt ({type(e).__name__}: {e})") from e


# --------------------------------------------------------------------------------------------
# Official PyTorch pickles (persistence records) -> Generator


def _plain(obj: Any) -> Any:
    """EasyDicts and OrderedDicts to plain dicts, numpy scalars to Python numbers, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _state_dict_of(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a persistence record and its children, by dotted name."""
    out: dict[str, torch.Tensor] = {}
    state = record.state
    non_persistent = set(state.get("_non_persistent_buffers_set", ()) or ())
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is None or name in non_persistent:
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise CheckpointError(f"{prefix}{name} is not a network module of the official code")
        out.update(_state_dict_of(child, prefix + name + "."))
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
    return _build(kwargs, state, source="the pickle")


def _build(kwargs: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str) -> Generator:
    try:
        G = Generator(**kwargs)
    except TypeError as e:
        raise CheckpointError(f"{source} holds generator settings this project does not know: {e}") from e
    try:
        G.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {source} do not fit the generator they describe: {e}") from e
    return G


# --------------------------------------------------------------------------------------------
# TensorFlow StyleGAN2 pickles -> Generator
#
# Facts of the conversion (as documented by the official converter): convolution weights are
# [kh, kw, in, out] in TF and the upsampling convolutions are stored flipped; dense weights are
# transposed; the modulation biases are stored minus one; fmap_base is half of channel_base;
# noise inputs are numbered over the layers from 4x4 up.

_TF_KWARGS = {  # TF static kwarg -> (our key path, default)
    "latent_size": ("z_dim", 512), "label_size": ("c_dim", 0), "dlatent_size": ("w_dim", 512),
    "resolution": ("img_resolution", 1024), "num_channels": ("img_channels", 3),
    "fmap_base": ("synthesis_kwargs.channel_base", 16384), "fmap_max": ("synthesis_kwargs.channel_max", 512),
    "conv_clamp": ("synthesis_kwargs.conv_clamp", None), "architecture": ("synthesis_kwargs.architecture", "skip"),
    "resample_kernel": ("synthesis_kwargs.resample_filter", [1, 3, 3, 1]),
    "use_noise": ("synthesis_kwargs.use_noise", True), "nonlinearity": ("synthesis_kwargs.activation", "lrelu"),
    "mapping_layers": ("mapping_kwargs.num_layers", 8), "label_fmaps": ("mapping_kwargs.embed_features", None),
    "mapping_fmaps": ("mapping_kwargs.layer_features", None),
    "mapping_nonlinearity": ("mapping_kwargs.activation", "lrelu"),
    "mapping_lrmul": ("mapping_kwargs.lr_multiplier", 0.01), "w_avg_beta": ("mapping_kwargs.w_avg_beta", 0.995),
}
_TF_IGNORED = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "conditioning",
               "fused_modconv", "num_fp16_res", "dtype", "is_template_graph", "randomize_noise",
               "components", "func_name"}


def _tf_variables(net: TFNetworkRecord, prefix: str = "") -> dict[str, np.ndarray]:
    out = {prefix + name: np.asarray(value) for name, value in net.state.get("variables", [])}
    for name, child in (net.state.get("components") or {}).items():
        if not isinstance(child, TFNetworkRecord):
            raise CheckpointError(f"TF component {name} is not a network")
        out.update(_tf_variables(child, prefix + name + "/"))
    return out


def tf_generator_kwargs(static_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Generator init kwargs from the static kwargs of a TF StyleGAN2 generator."""
    unknown = set(static_kwargs) - set(_TF_KWARGS) - _TF_IGNORED
    if unknown:
        raise CheckpointError(f"unknown TensorFlow generator settings {sorted(unknown)}")
    kwargs: dict[str, Any] = {"mapping_kwargs": {}, "synthesis_kwargs": {}}
    for tf_name, (path, default) in _TF_KWARGS.items():
        value = static_kwargs.get(tf_name, default)
        if tf_name == "fmap_base":
            value = int(value) * 2
        if value is None and tf_name in ("w_avg_beta",):
            value = 1
        if value is None and path.startswith("mapping_kwargs"):
            continue
        *parents, key = path.split(".")
        (kwargs[parents[0]] if parents else kwargs)[key] = _plain(value)
    return kwargs


def _tf_value(name: str, tf: Mapping[str, np.ndarray]) -> np.ndarray:
    """The TF variable for our parameter `name`, in our layout."""
    def var(key: str) -> np.ndarray:
        if key not in tf:
            raise CheckpointError(f"the TensorFlow pickle has no variable {key!r} (needed for {name})")
        return tf[key]

    if name == "mapping.w_avg":
        return var("dlatent_avg")
    if m := re.fullmatch(r"mapping\.embed\.(weight|bias)", name):
        v = var(f"mapping/LabelEmbed/{m[1]}")
        return v.T if m[1] == "weight" else v
    if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", name):
        v = var(f"mapping/Dense{m[1]}/{m[2]}")
        return v.T if m[2] == "weight" else v
    if name == "synthesis.b4.const":
        return var("synthesis/4x4/Const/const")[0]
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(.+)", name)
    if not m:
        raise CheckpointError(f"no TensorFlow counterpart known for {name}")
    res, layer, param = int(m[1]), m[2], m[3]
    scope = f"synthesis/{res}x{res}/" + {"conv0": "Conv0_up", "conv1": "Conv" if res == 4 else "Conv1",
                                         "torgb": "ToRGB", "skip": "Skip"}[layer]
    if param == "noise_const":
        index = int(math.log2(res)) * 2 - (5 if layer == "conv0" else 4)
        return var(f"synthesis/noise{index}")[0, 0]
    if param == "weight":
        v = var(f"{scope}/weight")
        if layer in ("conv0", "skip"):
            v = v[::-1, ::-1]
        return v.transpose(3, 2, 0, 1)
    if param == "affine.weight":
        return var(f"{scope}/mod_weight").T
    if param == "affine.bias":
        return var(f"{scope}/mod_bias") + 1
    return var(f"{scope}/{param}")  # bias, noise_strength


def generator_from_tf(net: TFNetworkRecord) -> Generator:
    """Rebuild a `Generator` from the `Gs` network of a TensorFlow StyleGAN2 pickle."""
    if int(net.state.get("version", 0)) < 4:
        raise CheckpointError("TensorFlow pickle version too old (need version 4 or later)")
    tf = _tf_variables(net)
    if any(k.startswith("ToRGB_lod") for k in tf):
        raise CheckpointError("progressive-growing ('orig') TensorFlow generators are not supported")
    kwargs = tf_generator_kwargs(net.state.get("static_kwargs") or {})
    template = Generator(**kwargs)
    state = {}
    for name, tensor in template.state_dict().items():
        if name.endswith("resample_filter"):
            state[name] = tensor
            continue
        value = np.array(_tf_value(name, tf), dtype=np.float32)  # a copy, C-contiguous
        if value.shape != tuple(tensor.shape):
            raise CheckpointError(f"TF variable for {name} has shape {value.shape}, expected {tuple(tensor.shape)}")
        state[name] = torch.from_numpy(value)
    return _build(kwargs, state, source="the TensorFlow pickle")


# --------------------------------------------------------------------------------------------
# Entry points


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


def save_generator(G: Generator, path: str | os.PathLike, *, extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write `G` in the project's safe format (safetensors, init kwargs in the header), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": SAFE_FORMAT_NAME, "version": SAFE_FORMAT_VERSION,
                "init_kwargs": json.dumps(_plain(G.init_kwargs)), **(extra_metadata or {})}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in G.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_safe_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a safetensors file (raises CheckpointError if it is not one)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e


def generator_from_safetensors(path: str | os.PathLike) -> Generator:
    """Load a generator written by `save_generator`."""
    from safetensors.torch import load_file

    meta = read_safe_metadata(path)
    if meta.get("format") != SAFE_FORMAT_NAME or "init_kwargs" not in meta:
        raise CheckpointError(f"{path}: a safetensors file, but not a generator saved by this project")
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: the weights are truncated or corrupt ({e})") from e
    return _build(json.loads(meta["init_kwargs"]), state, source=str(path))


def sniff_format(path: str | os.PathLike) -> str:
    """'safetensors', 'pickle' or 'torch-zip', from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if head[:2] == b"PK":
        return "torch-zip"
    if head[0] == 0x80:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(f"{path}: not a network pickle nor a safetensors file (starts with {head[:8]!r})")


def load_generator_file(path: str | os.PathLike) -> Generator:
    """A generator from a local file in any supported format, on the CPU, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    kind = sniff_format(path)
    if kind == "safetensors":
        G = generator_from_safetensors(path)
    elif kind == "pickle":
        G = generator_from_pickle(path)
    else:
        raise CheckpointError(f"{path}: a torch.save archive; convert it with scripts/export.py or save the "
                              "generator with draggan.save_generator")
    return G.eval().requires_grad_(False)
