"""FID (Heusel et al. 2017) between two sets of images, with the standard FID Inception network.

The network and the Frechet distance are those of the `pytorch-fid` package (the port of the
TensorFlow FID Inception, pool3 features, 2048-d); its weights file
`pt_inception-2015-12-05-6726825d.pth` is found through `draggan.weights` (torch hub's cache, or a
download when allowed). Without it, `WeightsUnavailable` says where to put it; no random network.
On a few hundred images FID is biased upwards: compare values measured on the same number of images.
"""

from __future__ import annotations

import os
from unittest import mock

import numpy as np
import torch

from draggan.weights import find_weights

FID_FILE = "pt_inception-2015-12-05-6726825d.pth"


def load_fid_inception(*, weights: str | os.PathLike | None = None, download: bool = False,
                       device: str | torch.device = "cpu") -> torch.nn.Module:
    import pytorch_fid.inception as fi

    path = find_weights(FID_FILE, fi.FID_WEIGHTS_URL, path=weights, download=download, what="FID Inception")
    state = torch.load(path, map_location="cpu", weights_only=True)
    with mock.patch.object(fi, "load_state_dict_from_url", lambda *a, **k: state):  # our file, no download
        net = fi.InceptionV3([fi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return net.to(device).eval().requires_grad_(False)


@torch.no_grad()
def inception_features(net: torch.nn.Module, images: torch.Tensor, batch: int = 50) -> np.ndarray:
    """[N, 2048] pool3 features of images [N, 3, H, W] in [-1, 1] (resized to 299 by the network)."""
    device = next(net.parameters()).device
    out = []
    for i in range(0, len(images), batch):
        x = ((images[i:i + batch].float().clamp(-1, 1) + 1) / 2).to(device)  # the network wants [0, 1]
        out.append(net(x)[0].flatten(1).cpu().double().numpy())
    return np.concatenate(out)


def frechet_distance(fa: np.ndarray, fb: np.ndarray) -> float:
    """The Frechet distance of Gaussians fitted to two feature sets [N, D] (pytorch-fid's formula)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    if len(fa) < 2 or len(fb) < 2:
        raise ValueError("FID needs at least two images in each set")
    return float(calculate_frechet_distance(fa.mean(0), np.atleast_2d(np.cov(fa, rowvar=False)), fb.mean(0),
                                            np.atleast_2d(np.cov(fb, rowvar=False))))


def fid(net: torch.nn.Module, images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """FID between two sets of images in [-1, 1] (at least 2 each)."""
    if len(images_a) < 2 or len(images_b) < 2:
        raise ValueError("FID needs at least two images in each set")
    return frechet_distance(inception_features(net, images_a), inception_features(net, images_b))
