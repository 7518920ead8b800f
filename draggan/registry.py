"""The model registry: one table of the generators the project knows by name.

Each entry says where the official file lives, what it is called in the cache, its resolution,
its licence, the drag settings that suit it (read by `DragConfig.for_generator`: the one source of
per-generator drag settings for Python users, the command line and the editor), and the sha256 and
size in bytes of the official file, so that a download is checked before it is installed and a file
found in the cache is known to be the model. Entries with `shipped=True` are inside the package (no
download). Entries without `url` cannot be downloaded automatically; the error names the file and
where to put it.

Where the checksums come from: the official hosts (NVIDIA NGC, the Self-Distilled StyleGAN bucket,
the StyleGAN2 CloudFront and StyleGAN-Human's Google Drive) publish none, and neither do the official
repositories' download scripts (DragGAN's `scripts/download_model.sh` fetches with plain `wget`). The
values are the Git LFS pointers (sha256 and exact size) of Hugging Face copies of these files: the
DragGAN demo's `DragGan/DragGan-Models` and `aaronb/StyleGAN2-pkl`, two independent uploads that agree
wherever both hold a file (`checksum_source` says which). For the two NGC files only the demo's copy
was found, whose page gives the sha256 and a size rounded to 364 MB: their exact size is not
registered (None), and the sha256 alone checks them.
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
    checksum_source: str = ""  # where sha256 and size were read (see the module docstring)
    drag: dict[str, Any] = field(default_factory=dict, hash=False)  # DragConfig settings that differ from the paper's
    # Projection PSNR (dB) below which a photo is outside the model's domain, per projection loss, and the projection
    # steps it was measured with (inversion/domain.py; the measurement: docs/results/domain-<name>.json)
    domain_psnr: dict[str, float] = field(default_factory=dict, hash=False)
    domain_steps: int | None = None


_NVIDIA_NC = "NVIDIA Source Code License-NC (non-commercial research)"
_SELF_DISTILLED = "Self-Distilled StyleGAN release (Mokady et al. 2022); see its project page for terms"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
_SD = "https://storage.googleapis.com/self-distilled-stylegan/"
_TF = "http://d36zk2xti64re0.cloudfront.net/stylegan2/networks/"
_DEMO = "Hugging Face DragGan/DragGan-Models (LFS pointer; size shown rounded, so not registered)"
_BOTH = "Hugging Face DragGan/DragGan-Models and aaronb/StyleGAN2-pkl (LFS pointers, identical)"
_AARONB = "Hugging Face aaronb/StyleGAN2-pkl (LFS pointer)"

MODELS: dict[str, ModelInfo] = {m.name: m for m in [
    # A 64-px generator has 5 blocks, so the paper's "6th block" does not exist. The block, the learning
    # rate and the stop rule were chosen by the landmark-manipulation measurement on held-out pairs (model
    # card). At 64 px one pixel is 1/64 of the image (8 px at 512), so the drag stops when the handle is on
    # its target's pixel instead of within 1 px: the tracker moves handles by whole pixels, and the pixel
    # nearest a target is within 0.71 px of it (half a pixel's diagonal; `draggan.presets.ON_TARGET_PIXEL`).
    ModelInfo("toy-faces-64", "toy-faces-64.safetensors", (64, 64),
              "MIT, like this project (trained by scripts/train.py on procedural faces; see toy-faces-64.md)",
              shipped=True, drag=dict(feature_block=3, lr=1e-2, stop_distance=0.71),
              domain_psnr={"mse": 24.3}, domain_steps=500),  # docs/results/domain-toy-faces-64.json
    # A second run of the same recipe (train.seed=1): a held-out model on which the library's default drag settings
    # are checked without tuning (its card). It has no drag settings of its own, on purpose.
    ModelInfo("toy-faces-64-seed1", "toy-faces-64-seed1.safetensors", (64, 64),
              "MIT, like this project (trained by scripts/train.py train.seed=1; see toy-faces-64-seed1.md)",
              shipped=True),
    ModelInfo("stylegan2-ffhq-512", "stylegan2-ffhq-512x512.pkl", (512, 512), _NVIDIA_NC,
              url=_NGC + "stylegan2-ffhq-512x512.pkl",
              sha256="d2b1c92f41ce8a64c55f7a75ef06c4c0eef9e17b1eb29aae8c10fb37b3e60478", checksum_source=_DEMO),
    ModelInfo("stylegan2-afhqcat-512", "stylegan2-afhqcat-512x512.pkl", (512, 512), _NVIDIA_NC,
              url=_NGC + "stylegan2-afhqcat-512x512.pkl",
              sha256="17a83abee464242f8bb40dc6363d33c2fb087066b68fc0147677fdbf21f7a7a9", checksum_source=_DEMO),
    ModelInfo("stylegan2-car-config-f", "stylegan2-car-config-f.pkl", (512, 512), _NVIDIA_NC,
              url=_TF + "stylegan2-car-config-f.pkl",
              sha256="e1618eee2b3ce87c4a3849442f7850ef12a478556bff035c8e09ee7e23b3794c", size=364027523,
              checksum_source=_AARONB),
    ModelInfo("stylegan2-cat-config-f", "stylegan2-cat-config-f.pkl", (256, 256), _NVIDIA_NC,
              url=_TF + "stylegan2-cat-config-f.pkl",
              sha256="08940fd616cfaf6bc7b0286b5d1a0b3f70febb26e136d64716c8d3f5e9bd3883", size=357418027,
              checksum_source=_BOTH),
    ModelInfo("stylegan2-lions-512", "stylegan2_lions_512_pytorch.pkl", (512, 512), _SELF_DISTILLED,
              url=_SD + "lions_512_pytorch.pkl",
              sha256="0a01ff8344521171b1a2eff1e9a51c1acbc48221bdc2594919187f66a3942bcc", size=363965313,
              checksum_source=_BOTH),
    ModelInfo("stylegan2-dogs-1024", "stylegan2_dogs_1024_pytorch.pkl", (1024, 1024), _SELF_DISTILLED,
              url=_SD + "dogs_1024_pytorch.pkl",
              sha256="c9e93090d02916165a602c728c0e37458fc0c58fbc58e4d75bcd096bb81c7e8c", size=381630441,
              checksum_source=_BOTH),
    ModelInfo("stylegan2-horses-256", "stylegan2_horses_256_pytorch.pkl", (256, 256), _SELF_DISTILLED,
              url=_SD + "horses_256_pytorch.pkl",
              sha256="f100dc32e2731a293f3b31a9038416f72aa5cc30555b3315a82e19c065f81b0c", size=357336721,
              checksum_source=_BOTH),
    ModelInfo("stylegan2-elephants-512", "stylegan2_elephants_512_pytorch.pkl", (512, 512), _SELF_DISTILLED,
              url=_SD + "elephants_512_pytorch.pkl",
              sha256="56504894f6d7121959af78a74148cf1e9d858e3710312efb11c41dbf27684363", size=363965313,
              checksum_source=_BOTH),
    ModelInfo("stylegan-human-512x256", "stylegan_human_v2_512.pkl", (512, 256),
              "StyleGAN-Human (Fu et al. 2022): research use only, see its repository's terms",
              note="download stylegan_human_v2_512.pkl (the PyTorch StyleGAN2 512x256 model) from the "
                   "StyleGAN-Human repository's model links",
              sha256="7af33f638e3b3aba7bf99456eec3e9d4a022d8a7dd67683a3605a7dd37665a3b", size=352745981,
              checksum_source=_BOTH),
]}


def get_model_info(name: str) -> ModelInfo:
    """The registry entry called `name` (a KeyError lists the known names)."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}") from None

