"""TensorFlow StyleGAN2 pickles (`dnnlib.tflib.network.Network` records) -> `Generator`.

Facts of the conversion (as documented by the official converter): convolution weights are
[kh, kw, in, out] in TF and the upsampling convolutions are stored flipped; dense weights are
transposed; the modulation biases are stored minus one; fmap_base is half of channel_base;
noise inputs are numbered over the layers from 4x4 up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from draggan import limits
from draggan.checkpoint.errors import CheckpointError
from draggan.checkpoint.generator_kwargs import build_generator, planned_shapes
from draggan.checkpoint.pickle_reader import TFNetworkRecord, plain_data
from draggan.networks import Generator

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


def _tf_variables(net: TFNetworkRecord, prefix: str = "", depth: int = 0) -> dict[str, np.ndarray]:
    """The float arrays of `net` and its components by their TF names, no more elements in all than a generator
    of the limits holds (so that converting them costs no more)."""
    if depth > limits.MAX_KWARGS_DEPTH:
        raise CheckpointError(f"the TensorFlow networks are nested more than {limits.MAX_KWARGS_DEPTH} levels deep")
    out = {}
    for entry in net.state.get("variables", []):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise CheckpointError("a TensorFlow variable is not a (name, array) pair")
        name, value = entry
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise CheckpointError(f"TF variable {prefix + name} is a {type(value).__name__} of "
                                  f"{getattr(value, 'dtype', None)}, not an array of floats")
        out[prefix + name] = value
    for name, child in (net.state.get("components") or {}).items():
        if not isinstance(child, TFNetworkRecord):
            raise CheckpointError(f"TF component {name} is not a network")
        out.update(_tf_variables(child, prefix + name + "/", depth + 1))
    total = sum(v.size for v in out.values())
    if total > 2 * limits.MAX_GENERATOR_PARAMETERS:
        raise CheckpointError(f"the TensorFlow generator holds {total:,} values; a generator within the limits "
                              f"holds at most {limits.MAX_GENERATOR_PARAMETERS:,}")
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
            if type(plain_data(value)) is not int:
                raise CheckpointError(f"TensorFlow generator setting fmap_base={value!r} is not a whole number")
            value = int(value) * 2
        if value is None and tf_name in ("w_avg_beta",):
            value = 1
        if value is None and path.startswith("mapping_kwargs"):
            continue
        *parents, key = path.split(".")
        (kwargs[parents[0]] if parents else kwargs)[key] = plain_data(value)
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
    version = plain_data(net.state.get("version", 0))
    if type(version) is not int or version < 4:
        raise CheckpointError(f"TensorFlow pickle version {version!r} is not supported (need version 4 or later)")
    tf = _tf_variables(net)
    if any(k.startswith("ToRGB_lod") for k in tf):
        raise CheckpointError("progressive-growing ('orig') TensorFlow generators are not supported")
    kwargs = tf_generator_kwargs(net.state.get("static_kwargs") or {})
    shapes = planned_shapes(kwargs, "the TensorFlow pickle")  # on the meta device: nothing allocated yet
    state = {}
    for name, shape in shapes.items():  # every variable of the planned shape before any is converted
        if not name.endswith("resample_filter"):
            value = _tf_value(name, tf)
            if value.shape != shape:
                raise CheckpointError(f"TF variable for {name} has shape {value.shape}, expected {shape}")
            state[name] = value
    state = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}  # copies
    template = Generator(**kwargs)  # its resample filters (buffers the TF pickle does not hold); weights: the file's
    state.update({k: v for k, v in template.state_dict().items() if k.endswith("resample_filter")})
    return build_generator(kwargs, state, source="the TensorFlow pickle")

