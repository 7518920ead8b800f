"""`load_generator`: a generator from a registered name, a local file or a URL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from draggan.checkpoint import CheckpointError, load_generator_file
from draggan.download import DownloadError, check_file, default_cache_dir, download_file, url_cache_path
from draggan.networks import Generator
from draggan.registry import MODELS, PACKAGE_MODELS, get_model_info

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; None picks CUDA, then Apple MPS, then the CPU (and says which).

    A device that was asked for by name but is not present is an error, never a silent fallback.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
        log.info("using device %s", device)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for, but this PyTorch sees no CUDA device; use device=cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("Apple MPS was asked for, but it is not available here; use device=cpu")
    return device


def resolve_checkpoint(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                       download: bool = True) -> Path:
    """The local file behind `source` (registered name, path or http(s) URL), downloading if needed.

    A registered model found in the cache is checked against its registered size (its sha256 when no size is
    registered; `scripts/download.py` checks both); a URL is cached under a hash of the whole URL.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    text = str(source)
    if text in MODELS:
        info = get_model_info(text)
        if info.shipped:
            return PACKAGE_MODELS / info.filename
        path = cache / info.filename
        if path.is_file():
            return check_file(path, size=info.size, sha256=None if info.size else info.sha256,
                              what=f"model {info.name}")
        if info.url is None:
            raise DownloadError(f"model {info.name!r} cannot be downloaded automatically: {info.note}, "
                                f"and put it at {path}")
        if not download:
            raise DownloadError(f"model {info.name!r} is not in the cache: download {info.url} and put it at {path}")
        return download_file(info.url, path, sha256=info.sha256, size=info.size)
    if text.startswith(("http://", "https://")):
        path = url_cache_path(text, cache)
        if path.is_file():
            return path
        if not download:
            raise DownloadError(f"{text} is not in the cache: download it and put it at {path}")
        return download_file(text, path)
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint: {source!r} is neither a file nor a registered model "
                              f"(registered: {', '.join(sorted(MODELS))})")
    return path


def load_generator(source: str | os.PathLike | Generator, device: str | torch.device | None = None, *,
                   cache_dir: str | os.PathLike | None = None, download: bool = True) -> Generator:
    """The EMA generator behind `source`, in eval mode, without gradients, on `device`.

    Args:
        source: a registered model name (see `draggan.registry.MODELS`), a local file (official
            network pickle, TensorFlow StyleGAN2 pickle or the project's safetensors format), an
            http(s) URL, or a Generator (returned as it is, moved to `device`).
        device: 'cpu', 'cuda', 'mps', a torch.device, or None for the best available.
        cache_dir: where downloads go (default `$DRAGGAN_CACHE` or ~/.cache/draggan).
        download: allow downloading a missing checkpoint.

    A generator loaded by its registered name keeps the name as `G.model_name`, so that
    `DragConfig.for_generator(G)` finds its recommended drag settings.
    """
    device = resolve_device(device)
    if isinstance(source, Generator):
        G = source
    elif str(source).startswith("random:"):
        G = random_generator(str(source))
    else:
        G = load_generator_file(resolve_checkpoint(source, cache_dir=cache_dir, download=download))
        if str(source) in MODELS:
            G.model_name = str(source)  # for DragConfig.for_generator(G): the registry's drag settings
    return G.eval().requires_grad_(False).to(device)


def random_generator(spec: str) -> Generator:
    """`random:RES[:SEED]`: an untrained StyleGAN2 of RES px (for demos of the mechanics and tests).

    Asked for by name only, never used in place of a missing checkpoint; it says so loudly.
    """
    parts = spec.split(":")
    try:
        res, seed = int(parts[1]), int(parts[2]) if len(parts) > 2 else 0
    except (IndexError, ValueError):
        raise ValueError(f"expected random:RES[:SEED], got {spec!r}") from None
    log.warning("using a RANDOMLY INITIALISED generator (%s): its images are abstract patterns, not a trained model",
                spec)
    torch.manual_seed(seed)
    G = Generator(z_dim=64, c_dim=0, w_dim=64, img_resolution=res, img_channels=3,
                  mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=16 * res, channel_max=64, conv_clamp=256))
    with torch.no_grad():  # untrained biases and noise strengths are zero: make the patterns richer
        for name, t in G.named_parameters():
            if name.endswith("noise_strength") or (name.endswith("bias") and "affine" not in name):
                t.add_(0.1 * torch.randn_like(t))
    return G
