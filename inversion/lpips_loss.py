"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR
2018) through the `lpips` package, with the backbone's ImageNet weights loaded explicitly.

The `lpips` package ships its linear calibration layers; the backbone (VGG16 or AlexNet) comes from
torchvision's weights file. `load_lpips` looks for that file, in order: the path given, torch hub's
cache (`torch.hub.get_dir()/checkpoints`, where torchvision keeps it), a download (`draggan.weights`,
the lookup of every auxiliary network). When none works it raises `LPIPSWeightsError` (the
`WeightsUnavailable` of that lookup) naming the file and where to put it: an LPIPS with a random
backbone is never returned.
"""

from __future__ import annotations

import os
import warnings

import torch

from draggan.weights import WeightsUnavailable, find_weights

BACKBONE_FILES = {  # torchvision's file of each backbone and where torchvision downloads it from
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
}


LPIPSWeightsError = WeightsUnavailable  # the backbone weights could not be found or downloaded (or do not fit)


def _backbone_state(net: str, weights: str | os.PathLike | None, download: bool) -> dict[str, torch.Tensor]:
    filename, url = BACKBONE_FILES[net]
    path = find_weights(filename, url, path=weights, download=download, what=f"LPIPS {net} backbone",
                        hash_prefix=filename.rsplit("-", 1)[1].split(".")[0],  # torchvision names its files so
                        setting="lpips_weights")
    return torch.load(path, map_location="cpu", weights_only=True)


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
