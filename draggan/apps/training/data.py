"""Training images: an endless stream from the toy-faces renderer, or a folder of images on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from draggan.image_io import decode_image
from draggan.apps.toyfaces.renderer import render, sample_params

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class ToyFacesStream:
    """Batch `i` of the stream is rendered from parameters drawn with the seed (seed, i): resumable exactly."""

    def __init__(self, resolution: int, *, seed: int = 0):
        self.resolution, self.seed = resolution, seed

    def batch(self, index: int, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Batch `index` rendered on `device` (the parameters are drawn on the host: a few numbers per face)."""
        params = sample_params(batch_size, np.random.default_rng([self.seed, index]))
        if torch.device(device).type == "cuda":
            params = params.pin_memory().to(device, non_blocking=True)  # no wait for the queued kernels
        return render(params.to(device), self.resolution)


class ImageFolder:
    """Every image under `path` (square, `resolution` px, RGB), held in memory; batches drawn with replacement."""

    def __init__(self, path: str | Path, resolution: int, *, seed: int = 0):
        files = sorted(p for p in Path(path).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {path}")
        arrays = []
        for f in files:
            with decode_image(f) as decoded:  # under draggan.limits, like every image the project reads
                img = decoded.convert("RGB")
            if img.size != (resolution, resolution):
                raise ValueError(f"{f} is {img.size[0]}x{img.size[1]}, the model is {resolution}x{resolution}")
            arrays.append(np.asarray(img))
        self.images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        self.resolution, self.seed = resolution, seed

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: int, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
        idx = np.random.default_rng([self.seed, index]).integers(0, len(self.images), batch_size)
        return self.images[torch.from_numpy(idx)].to(device).float() / 127.5 - 1
