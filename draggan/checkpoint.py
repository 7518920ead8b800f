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

Sizes are validated before anything is allocated (the limits are in `draggan.limits`): every init
kwarg is checked against its bounds, the network is planned on PyTorch's `meta` device (no memory)
to count its parameters and feature sizes, and the tensors a file declares (a safetensors header,
or the views of a pickle's storages) must have exactly the planned shapes before one is read or
converted. A safetensors file is recognised by its structure (an 8-byte little-endian header
length, then a JSON object), never by a single byte.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan import limits
from draggan.files import atomic_write
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


def _rebuild_tensor(storage, storage_offset, size, stride, *args):
    """`torch._utils._rebuild_tensor_v2`, refusing views that reach outside their storage or repeat its
    elements: a 1-element storage expanded (stride 0) to 20000 x 20000 costs nothing to unpickle but
    1.6 GB to any later copy, so a tensor may have no more elements than its storage holds."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise CheckpointError(f"a tensor in the pickle is built on a {type(storage).__name__}, not a storage")
    if (not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride) or len(size) > 8
            or not all(type(v) is int and v >= 0 for v in size + stride) or type(storage_offset) is not int):
        raise CheckpointError(f"a tensor in the pickle has a malformed size {size!r} or stride {stride!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage's deprecation notice
        available = storage.size()
    numel = math.prod(size)
    if numel:
        extent = storage_offset + sum((n - 1) * st for n, st in zip(size, stride)) + 1
        if storage_offset < 0 or extent > available or numel > available:
            raise CheckpointError(f"a tensor in the pickle claims {list(size)} = {numel} elements (stride "
                                  f"{list(stride)}) of a storage of {available}: it is not a network's weight")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, *args)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
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


def _plain(obj: Any, _depth: int = 0, _budget: list[int] | None = None) -> Any:
    """EasyDicts and OrderedDicts to plain dicts, numpy scalars to Python numbers, recursively; a structure
    nested more than MAX_KWARGS_DEPTH levels (a self-referencing list, say) or holding more than
    MAX_KWARGS_ITEMS values is a CheckpointError."""
    budget = [limits.MAX_KWARGS_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if _depth > limits.MAX_KWARGS_DEPTH or budget[0] < 0:
        raise CheckpointError(f"the generator settings are nested more than {limits.MAX_KWARGS_DEPTH} levels deep "
                              f"or hold more than {limits.MAX_KWARGS_ITEMS} values (a recursive structure?)")
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, _depth + 1, budget) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, _depth + 1, budget) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _state_dict_of(record: PersistentRecord, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a persistence record and its children, by dotted name."""
    if depth > limits.MAX_KWARGS_DEPTH:
        raise CheckpointError(f"the network's modules are nested more than {limits.MAX_KWARGS_DEPTH} levels deep")
    out: dict[str, torch.Tensor] = {}
    state = record.state
    non_persistent = set(state.get("_non_persistent_buffers_set", ()) or ())
    for group in ("_parameters", "_buffers", "_modules"):
        if not isinstance(state.get(group) or {}, Mapping):
            raise CheckpointError(f"{prefix or 'the network'}: its {group} is not a mapping")
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
    return _build(kwargs, state, source="the pickle")


# --------------------------------------------------------------------------------------------
# Sizes before allocation: the generator's settings, its planned shapes, the file's tensors

_TOP_LEVEL = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs",
              "square"}
_INT_BOUNDS = {  # setting -> (lowest, highest)
    "z_dim": (0, limits.MAX_LATENT_DIM), "c_dim": (0, limits.MAX_LATENT_DIM), "w_dim": (1, limits.MAX_LATENT_DIM),
    "img_resolution": (4, limits.MAX_RESOLUTION), "img_channels": (1, 4),
    "num_layers": (1, limits.MAX_MAPPING_LAYERS), "embed_features": (1, limits.MAX_LATENT_DIM),
    "layer_features": (1, limits.MAX_LATENT_DIM), "channel_base": (1, limits.MAX_CHANNEL_BASE),
    "channel_max": (1, limits.MAX_CHANNELS), "kernel_size": (1, limits.MAX_KERNEL_SIZE),
}
_CHOICES = {"architecture": ("orig", "skip", "resnet"), "activation": ("lrelu", "linear")}


def _check_setting(name: str, value: Any) -> None:
    """One generator setting within its bounds (`draggan.limits`), or a CheckpointError naming it."""
    key = name.rsplit(".", 1)[-1]
    if key in _INT_BOUNDS:
        if value is None and key in ("embed_features", "layer_features"):
            return
        lo, hi = _INT_BOUNDS[key]
        if type(value) is not int or not lo <= value <= hi:
            raise CheckpointError(f"generator setting {name}={value!r} is not a whole number in [{lo}, {hi}]")
    elif key in _CHOICES:
        if value not in _CHOICES[key]:
            raise CheckpointError(f"generator setting {name}={value!r} is not one of {_CHOICES[key]}")
    elif key in ("lr_multiplier", "conv_clamp", "w_avg_beta"):
        if value is None and key != "lr_multiplier":
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                or (key == "w_avg_beta" and value > 1) or (key != "w_avg_beta" and value == 0):
            raise CheckpointError(f"generator setting {name}={value!r} is not a finite number in its range")
    elif key in ("use_noise", "square"):
        if not isinstance(value, bool):
            raise CheckpointError(f"generator setting {name}={value!r} is not true or false")
    elif key == "resample_filter":
        if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 8
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
                or sum(value) == 0):
            raise CheckpointError(f"generator setting {name}={value!r} is not a list of 1-8 finite filter taps")


def check_generator_kwargs(kwargs: Any) -> None:
    """Every init kwarg of a generator within the bounds of `draggan.limits`, before anything is built.

    Types and ranges of the known settings, the resolution a power of two, at least one channel in the
    last block; unknown settings are left to `Generator`, which refuses them (planned on `meta`).
    """
    if not isinstance(kwargs, Mapping):
        raise CheckpointError(f"the generator settings are a {type(kwargs).__name__}, not a mapping")
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution"):
        if key not in kwargs:
            raise CheckpointError(f"the generator settings lack {key}")
    mapping, synthesis = kwargs.get("mapping_kwargs") or {}, kwargs.get("synthesis_kwargs") or {}
    if not isinstance(mapping, Mapping) or not isinstance(synthesis, Mapping):
        raise CheckpointError("mapping_kwargs and synthesis_kwargs must be mappings")
    flat = {k: v for k, v in kwargs.items() if k not in _TOP_LEVEL}
    settings = {**{k: v for k, v in kwargs.items() if k in _TOP_LEVEL and not k.endswith("_kwargs")},
                **{f"mapping_kwargs.{k}": v for k, v in mapping.items()},
                **{f"synthesis_kwargs.{k}": v for k, v in {**synthesis, **flat}.items()}}
    for name, value in settings.items():
        _check_setting(name, value)
    res = kwargs["img_resolution"]
    if res & (res - 1):
        raise CheckpointError(f"generator setting img_resolution={res} is not a power of two")
    channel_base = {**synthesis, **flat}.get("channel_base", 32768)
    if channel_base // res < 1:
        raise CheckpointError(f"generator settings channel_base={channel_base} and img_resolution={res} leave the "
                              "last block without channels")


def planned_shapes(kwargs: Mapping[str, Any], source: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter and buffer of `Generator(**kwargs)`, planned on the `meta` device
    (nothing is allocated) after `check_generator_kwargs`; the parameter count and the largest feature map
    are held to MAX_GENERATOR_PARAMETERS and MAX_FEATURE_ELEMENTS."""
    check_generator_kwargs(kwargs)
    try:
        with torch.device("meta"):
            G = Generator(**kwargs)
    except (TypeError, ValueError, ZeroDivisionError, RuntimeError) as e:
        raise CheckpointError(f"{source} holds generator settings this project does not know: {e}") from e
    shapes = {k: tuple(v.shape) for k, v in G.state_dict().items()}
    count = sum(math.prod(s) for s in shapes.values())
    if count > limits.MAX_GENERATOR_PARAMETERS:
        raise CheckpointError(f"{source} describes a generator of {count:,} parameters; at most "
                              f"{limits.MAX_GENERATOR_PARAMETERS:,} are accepted")
    for k in range(len(G.synthesis.block_resolutions)):
        c, h, w = G.synthesis.feature_shape(k)
        if c * h * w > limits.MAX_FEATURE_ELEMENTS:
            raise CheckpointError(f"{source} describes a generator whose block {k} has {c}x{h}x{w} features; at "
                                  f"most {limits.MAX_FEATURE_ELEMENTS:,} values per feature map are accepted")
    return shapes


def check_state_shapes(shapes: Mapping[str, tuple[int, ...]], planned: Mapping[str, tuple[int, ...]],
                       source: str) -> None:
    """The tensors a file holds (name -> shape) are exactly the planned ones, before any is read or converted."""
    missing, unexpected = sorted(set(planned) - set(shapes)), sorted(set(shapes) - set(planned))
    if missing or unexpected:
        raise CheckpointError(f"the weights in {source} do not fit the generator they describe: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    wrong = [f"{k} {list(shapes[k])} (expected {list(planned[k])})" for k in planned if tuple(shapes[k]) != planned[k]]
    if wrong:
        raise CheckpointError(f"the weights in {source} do not fit the generator they describe: {', '.join(wrong[:3])}")


def _build(kwargs: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str) -> Generator:
    check_state_shapes({k: tuple(v.shape) for k, v in state.items()}, planned_shapes(kwargs, source), source)
    G = Generator(**kwargs)
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
            if type(_plain(value)) is not int:
                raise CheckpointError(f"TensorFlow generator setting fmap_base={value!r} is not a whole number")
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
    version = _plain(net.state.get("version", 0))
    if type(version) is not int or version < 4:
        raise CheckpointError(f"TensorFlow pickle version {version!r} is not supported (need version 4 or later)")
    tf = _tf_variables(net)
    if any(k.startswith("ToRGB_lod") for k in tf):
        raise CheckpointError("progressive-growing ('orig') TensorFlow generators are not supported")
    kwargs = tf_generator_kwargs(net.state.get("static_kwargs") or {})
    planned_shapes(kwargs, "the TensorFlow pickle")  # the settings within bounds before the template is built
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
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


_SAFETENSORS_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
                         "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")  # what a generator's weights may be stored as


def _safetensors_header_length(head: bytes, file_size: int) -> int | None:
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
        n = _safetensors_header_length(head, size)
        if n is None:
            raise CheckpointError(f"{path}: not a readable safetensors file (no header that fits its {size} bytes)")
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({type(e).__name__})") from None
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
        kwargs = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{source}: its init_kwargs are not valid JSON ({type(e).__name__})") from None
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{source}: its init_kwargs are a {type(kwargs).__name__}, not a JSON object")
    return _plain(kwargs)


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
    return _build(kwargs, state, source=str(path))


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
    if _safetensors_header_length(head, size) is not None:
        return "safetensors"
    if head[0] == 0x80:
        return "pickle"
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
