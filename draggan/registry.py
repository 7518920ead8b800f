"""The model registry: one table of the generators the project knows by name.

Each entry says where the official file lives, what it is called in the cache, its resolution,
its licence, and the drag settings that suit it (read by `DragConfig.for_generator`: the one
source of per-generator drag settings for Python users, the command line and the editor).
Entries with `shipped=True` are inside the package (no download). Entries without `url` cannot
be downloaded automatically; the error names the file and where to put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "toy-faces-64"  # the embedded model, shipped with the package: every command's default


@dataclass(frozen=True)
class ModelInfo:
    name: str
    filename: str  # file name in the cache directory (or in the package, for shipped models)
    resolution: tuple[int, int]  # (height, width) of the generated images
    license: str  # licence note of the weights
    url: str | None = None  # where to download it from; None = by hand only
    sha256: str | None = None  # checksum of the file, when known
    size: int | None = None  # size in bytes, when known
    shipped: bool = False  # the file is part of this package (PACKAGE_MODELS)
    note: str = ""  # how to get it by hand, when there is no URL
    drag: dict[str, Any] = field(default_factory=dict, hash=False)  # DragConfig settings that differ from the paper's


_NVIDIA_NC = "NVIDIA Source Code License-NC (non-commercial research)"
_SELF_DISTILLED = "Self-Distilled StyleGAN release (Mokady et al. 2022); see its project page for terms"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
_SD = "https://storage.googleapis.com/self-distilled-stylegan/"
_TF = "http://d36zk2xti64re0.cloudfront.net/stylegan2/networks/"

MODELS: dict[str, ModelInfo] = {m.name: m for m in [
    # A 64-px generator has 5 blocks, so the paper's "6th block" does not exist. The block, the learning
    # rate and the stop rule were chosen by the landmark-manipulation measurement on held-out pairs (model
    # card). At 64 px one pixel is 1/64 of the image (8 px at 512), so the drag stops when the handle is on
    # its target's pixel (the tracker moves handles by whole pixels) instead of within 1 px.
    ModelInfo("toy-faces-64", "toy-faces-64.safetensors", (64, 64),
              "MIT, like this project (trained by scripts/train.py on procedural faces; see toy-faces-64.md)",
              shipped=True, drag=dict(feature_block=3, lr=5e-3, stop_distance=0.5)),
    ModelInfo("stylegan2-ffhq-512", "stylegan2-ffhq-512x512.pkl", (512, 512), _NVIDIA_NC,
              url=_NGC + "stylegan2-ffhq-512x512.pkl"),
    ModelInfo("stylegan2-afhqcat-512", "stylegan2-afhqcat-512x512.pkl", (512, 512), _NVIDIA_NC,
              url=_NGC + "stylegan2-afhqcat-512x512.pkl"),
    ModelInfo("stylegan2-car-config-f", "stylegan2-car-config-f.pkl", (512, 512), _NVIDIA_NC,
              url=_TF + "stylegan2-car-config-f.pkl"),
    ModelInfo("stylegan2-cat-config-f", "stylegan2-cat-config-f.pkl", (256, 256), _NVIDIA_NC,
              url=_TF + "stylegan2-cat-config-f.pkl"),
    ModelInfo("stylegan2-lions-512", "stylegan2_lions_512_pytorch.pkl", (512, 512), _SELF_DISTILLED,
              url=_SD + "lions_512_pytorch.pkl"),
    ModelInfo("stylegan2-dogs-1024", "stylegan2_dogs_1024_pytorch.pkl", (1024, 1024), _SELF_DISTILLED,
              url=_SD + "dogs_1024_pytorch.pkl"),
    ModelInfo("stylegan2-horses-256", "stylegan2_horses_256_pytorch.pkl", (256, 256), _SELF_DISTILLED,
              url=_SD + "horses_256_pytorch.pkl"),
    ModelInfo("stylegan2-elephants-512", "stylegan2_elephants_512_pytorch.pkl", (512, 512), _SELF_DISTILLED,
              url=_SD + "elephants_512_pytorch.pkl"),
    ModelInfo("stylegan-human-512x256", "stylegan_human_v2_512.pkl", (512, 256),
              "StyleGAN-Human (Fu et al. 2022): research use only, see its repository's terms",
              note="download stylegan_human_v2_512.pkl (the PyTorch StyleGAN2 512x256 model) from the "
                   "StyleGAN-Human repository's model links"),
]}


def get_model_info(name: str) -> ModelInfo:
    """The registry entry called `name` (a KeyError lists the known names)."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}") from None

