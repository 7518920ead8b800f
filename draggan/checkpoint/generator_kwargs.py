"""A generator's settings and tensor sizes checked before anything is allocated.

Every init kwarg is checked against its bounds (`draggan.limits`), the network is planned on PyTorch's
`meta` device (no memory) to count its parameters and feature sizes, and the tensors a file declares (a
safetensors header, or the views of a pickle's storages) must have exactly the planned shapes before one is
read or converted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.networks import Generator

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


def build_generator(kwargs: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str) -> Generator:
    check_state_shapes({k: tuple(v.shape) for k, v in state.items()}, planned_shapes(kwargs, source), source)
    G = Generator(**kwargs)
    try:
        G.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {source} do not fit the generator they describe: {e}") from e
    return G

