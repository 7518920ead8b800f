"""Writers of network pickles in the official layouts, for tests (the official code cannot ship).

`write_official_pickle` writes what `pickle.dump` of an official StyleGAN2-ADA training snapshot
holds: a dict whose networks are `torch_utils.persistence` records (class name, init kwargs as
`dnnlib.EasyDict`, embedded module source, and the module state with real pickled tensors).
`write_tf_pickle` writes the (G, D, Gs) tuple of `dnnlib.tflib.network.Network` objects of the
TensorFlow StyleGAN2. Stand-in modules named like the official ones exist only while writing.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types

import numpy as np
import torch

OFFICIAL_CLASS_NAMES = {
    "Generator": "Generator", "MappingNetwork": "MappingNetwork", "SynthesisNetwork": "SynthesisNetwork",
    "SynthesisBlock": "SynthesisBlock", "SynthesisLayer": "SynthesisLayer", "ToRGBLayer": "ToRGBLayer",
    "FullyConnectedLayer": "FullyConnectedLayer", "SkipLayer": "Conv2dLayer",
}


def _reconstruct_persistent_obj(meta):  # never called: only its name goes into the pickle
    raise AssertionError("stand-in")


class EasyDict(dict):
    pass


class Network:
    """Stand-in of dnnlib.tflib.network.Network: pickles its state dict."""

    def __init__(self, state):
        self._state = state

    def __getstate__(self):
        return self._state


@contextlib.contextmanager
def _stand_in_modules():
    names = {
        "torch_utils": {}, "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
        "dnnlib": {"EasyDict": EasyDict}, "dnnlib.util": {"EasyDict": EasyDict},
        "dnnlib.tflib": {}, "dnnlib.tflib.network": {"Network": Network},
    }
    saved = {n: sys.modules.get(n) for n in names}
    originals = (_reconstruct_persistent_obj.__module__, EasyDict.__module__, Network.__module__)
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    Network.__module__ = "dnnlib.tflib.network"
    try:
        for n, attrs in names.items():
            m = types.ModuleType(n)
            m.__dict__.update(attrs)
            sys.modules[n] = m
        yield
    finally:
        _reconstruct_persistent_obj.__module__, EasyDict.__module__, Network.__module__ = originals
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class _Persistent:
    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return _reconstruct_persistent_obj, (self.meta,)


def _record(module: torch.nn.Module, init_kwargs: dict | None, module_src: str) -> _Persistent:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict((k, v) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict((k, _record(v, None, module_src)) for k, v in module._modules.items()),
        "_forward_hooks": collections.OrderedDict(), "_forward_pre_hooks": collections.OrderedDict(),
        "_init_args": (), "_init_kwargs": EasyDict(init_kwargs or {}),
        "weight_gain": np.float64(0.125),  # official modules keep numpy scalars as attributes
    }
    meta = dict(type="class", version=4, module_src=module_src,
                class_name=OFFICIAL_CLASS_NAMES[type(module).__name__], state=state)
    return _Persistent(meta)


def _easy(obj):
    if isinstance(obj, dict):
        return EasyDict({k: _easy(v) for k, v in obj.items()})
    return obj


def write_official_pickle(G, path, *, only_g_ema: bool = False, module_src: str = "# official source here\n",
                          init_kwargs: dict | None = None) -> None:
    """Pickle `G` the way an official training snapshot stores its networks."""
    kwargs = dict(G.init_kwargs if init_kwargs is None else init_kwargs)
    kwargs.pop("square", None)  # the official pickles do not store it
    with _stand_in_modules():
        rec = _record(G, _easy(kwargs), module_src)
        data = {"G_ema": rec} if only_g_ema else {
            "G": rec, "D": rec, "G_ema": rec,
            "augment_pipe": None, "training_set_kwargs": EasyDict(resolution=G.img_resolution)}
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=4)


def tf_variables_of(G) -> tuple[dict, dict, dict]:
    """The TF variables (top level, mapping, synthesis) that hold the weights of `G`."""
    sd = {k: v.numpy() for k, v in G.state_dict().items()}
    top = {"dlatent_avg": sd["mapping.w_avg"]}
    mapping = {}
    for i in range(G.mapping.num_layers):
        mapping[f"Dense{i}/weight"] = sd[f"mapping.fc{i}.weight"].T
        mapping[f"Dense{i}/bias"] = sd[f"mapping.fc{i}.bias"]
    syn = {"4x4/Const/const": sd["synthesis.b4.const"][None]}
    noise_index = 0
    for r in G.synthesis.block_resolutions:
        layers = [("conv1", "Conv")] if r == 4 else [("conv0", "Conv0_up"), ("conv1", "Conv1")]
        for ours, theirs in layers:
            p = f"synthesis.b{r}.{ours}."
            w = sd[p + "weight"].transpose(2, 3, 1, 0)  # [O, I, kh, kw] -> [kh, kw, I, O]
            syn[f"{r}x{r}/{theirs}/weight"] = w[::-1, ::-1].copy() if ours == "conv0" else w
            syn[f"{r}x{r}/{theirs}/bias"] = sd[p + "bias"]
            syn[f"{r}x{r}/{theirs}/noise_strength"] = sd[p + "noise_strength"]
            syn[f"{r}x{r}/{theirs}/mod_weight"] = sd[p + "affine.weight"].T
            syn[f"{r}x{r}/{theirs}/mod_bias"] = sd[p + "affine.bias"] - 1
            syn[f"noise{noise_index}"] = sd[p + "noise_const"][None, None]
            noise_index += 1
        p = f"synthesis.b{r}.torgb."
        syn[f"{r}x{r}/ToRGB/weight"] = sd[p + "weight"].transpose(2, 3, 1, 0)
        syn[f"{r}x{r}/ToRGB/bias"] = sd[p + "bias"]
        syn[f"{r}x{r}/ToRGB/mod_weight"] = sd[p + "affine.weight"].T
        syn[f"{r}x{r}/ToRGB/mod_bias"] = sd[p + "affine.bias"] - 1
    return top, mapping, syn


def write_tf_pickle(G, path, *, static_kwargs: dict, top_override: dict | None = None) -> None:
    """Pickle `G` as the (G, D, Gs) tuple of a TensorFlow StyleGAN2 snapshot (`top_override` replaces top-level
    variables by other objects, for hostile files)."""
    top, mapping, syn = tf_variables_of(G)
    top.update(top_override or {})

    def net(name, variables, components=None, kwargs=None):
        return Network({"version": 4, "name": name, "static_kwargs": kwargs or {},
                        "components": components or {}, "build_module_src": "import os\nos.system('false')\n",
                        "build_func_name": "training.networks_stylegan2.G_main",
                        "variables": list(variables.items())})

    with _stand_in_modules():
        Gs = net("G_synthesis_stylegan2", top, {"mapping": net("G_mapping", mapping), "synthesis": net("G_synthesis", syn)},
                 static_kwargs)
        D = net("D_stylegan2", {"x": np.zeros(1, np.float32)})
        with open(path, "wb") as f:
            pickle.dump((Gs, D, Gs), f, protocol=4)
