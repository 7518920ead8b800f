"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR
2018) through the `lpips` package, with the backbone's ImageNet weights loaded explicitly.

The `lpips` package ships its linear calibration layers; the backbone (VGG16 or AlexNet) comes from
torchvision's weights file. `load_lpips` looks for that file, in order: the path given, torch hub's
cache (`torch.hub.get_dir()/checkpoints`, where torchvision keeps it), a download through
torchvision. When none works it raises `LPIPSWeightsError` naming the file and where to put it:
an LPIPS with a random backbone is never returned.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

BACKBONE_FILES = {  # torchvision's file of each backbone and where torchvision downloads it from
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
}


class LPIPSWeightsError(FileNotFoundError):
    """The backbone weights of LPIPS could not be found or downloaded."""


def backbone_cache_path(net: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net][0]


def _backbone_state(net: str, weights: str | os.PathLike | None, download: bool) -> dict[str, torch.Tensor]:
    filename, url = BACKBONE_FILES[net]
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise LPIPSWeightsError(f"LPIPS backbone weights not found at {path} (expected torchvision's {filename})")
        return torch.load(path, map_location="cpu", weights_only=True)
    cached = backbone_cache_path(net)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    if download:
        try:
            return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True)
        except Exception as e:  # no network, a proxy, a truncated file...
            reason = f"{type(e).__name__}: {e}"
    else:
        reason = "downloads are off"
    raise LPIPSWeightsError(
        f"LPIPS needs the {net} backbone weights {filename} ({reason}). Download {url} on a machine with "
        f"internet and put it at {cached}, or pass its path as the `lpips_weights` setting.")


def load_lpips(net: str = "vgg", *, weights: str | os.PathLike | None = None, download: bool = True,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """An `lpips.LPIPS` with the ImageNet backbone `net` ('vgg' or 'alex'), frozen, in eval mode.

    Call it on two images in [-1, 1] ([B, 3, H, W]); it returns [B, 1, 1, 1] distances.
    """
    import lpips

    if net not in BACKBONE_FILES:
        raise ValueError(f"LPIPS backbone must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    state = _backbone_state(net, weights, download)
    with warnings.catch_warnings():  # lpips still uses torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)  # random trunk, then ours
    trunk = model.net
    own = trunk.state_dict()
    mapped = {}
    for key, value in state.items():
        if not key.startswith("features."):
            continue  # the classifier is not part of LPIPS
        _, index, param = key.split(".")
        slot = [k for k in own if k.endswith(f".{index}.{param}") and k.startswith("slice")]
        if len(slot) != 1:
            raise LPIPSWeightsError(f"{key} of the {net} weights has no place in the LPIPS trunk")
        mapped[slot[0]] = value
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise LPIPSWeightsError(f"the {net} backbone weights lack {missing[:4]}{'...' if len(missing) > 4 else ''}: "
                                f"not torchvision's {BACKBONE_FILES[net][0]}?")
    trunk.load_state_dict(mapped, strict=True)
    return model.to(device).eval().requires_grad_(False)
