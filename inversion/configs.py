"""Schemas of the inversion: `InversionSettings` (with `PTISettings`, the settings of `inversion.run.invert_image`)
and the commands `scripts/invert.py` and `scripts/edit_real.py` (`inversion.run.run_invert`, `run_edit_real`).

Dataclasses only, so that registering them (`register_configs`, which the inversion's and evaluation's scripts call)
imports no inversion machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from draggan.configs import DragSettings
from draggan.limits import PHOTO_PIXELS
from draggan.registry import DEFAULT_MODEL


@dataclass
class PTISettings:
    enabled: bool = True  # pivotal tuning after the projection
    num_steps: int = 350
    lr: float = 3e-4
    lpips_weight: float = 1.0  # 0 = L2 only (no LPIPS weights needed)
    l2_weight: float = 1.0
    locality_regularization: bool = False
    lpips_net: str = "alex"  # the PTI paper's choice
    lpips_weights: str | None = None  # torchvision's backbone file; None = torch hub's cache or a download


@dataclass
class InversionSettings:
    space: str = "w+"  # 'w' or 'w+'
    num_steps: int = 1000
    lr: float = 0.1
    loss: str = "lpips"  # 'lpips', 'mse' or 'lpips+mse'
    noise_regularize: float = 1e5
    initial_noise_factor: float = 0.05
    optimize_noise: bool = True
    w_avg_samples: int = 10000
    lpips_net: str = "vgg"  # the StyleGAN2 projector's choice
    lpips_weights: str | None = None  # torchvision's backbone file; None = torch hub's cache or a download
    fit: str = "crop"  # 'crop' or 'pad' the photo to the generator's aspect
    max_pixels: int = PHOTO_PIXELS  # larger photos are reduced while read (with a warning)
    align_landmarks: Any = None  # [[x, y] x 4]: eyes and mouth corners in the photo -> FFHQ-style alignment
    pti: PTISettings = field(default_factory=PTISettings)


@dataclass
class InvertConfig:
    image: str = "???"  # the photo: any file PIL opens
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    inversion: InversionSettings = field(default_factory=InversionSettings)
    logger: Any = None  # draggan.loggers.LoggerConfig (the logger group)
    device: str = "auto"
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, None = torch's
    progress: bool = True


@dataclass
class EditRealConfig(InvertConfig):
    drag: DragSettings = field(default_factory=DragSettings)
    points: Any = "???"  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list
    inversion_dir: str | None = None  # reuse a finished scripts/invert.py folder instead of inverting again
    image: str | None = None  # not needed with inversion_dir
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    frame_every: int = 2
    video: str = "gif"
    explain: bool = False  # print every drag setting the edit would run with, and where it came from; then stop


def schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, schema) of the inversion's configs; every schema is a root config (a group's YAML files extend
    it by name), so no group offers a schema as one of its choices."""
    return [(None, "invert_schema", InvertConfig), (None, "edit_real_schema", EditRealConfig),
            (None, "inversion_schema", InversionSettings)]  # extended by conf/inversion/*.yaml


def register_configs() -> None:
    """Register the inversion's schemas (`schemas()`) on top of the library's and the applications'
    (`draggan.apps.configs.register_configs`)."""
    from hydra.core.config_store import ConfigStore

    from draggan.apps import configs as applications

    applications.register_configs()
    cs = ConfigStore.instance()
    for group, name, node in schemas():
        cs.store(group=group, name=name, node=node)
