"""Schemas of the drag command (`scripts/drag.py`) and of the `drag` config group, and the one conversion from
a composed config to library objects (the applications' schemas are in `draggan.apps.configs` and beside each app).

Each YAML file in conf/ extends a schema, so a misspelt key fails when the config is composed instead of being
ignored; `eval.configs.register_configs` registers every schema of the project in Hydra's ConfigStore. This
module stays light (no training loop, no inversion, no evaluation): `scripts/download.py` imports it.

A composed config becomes a library object in one way: `from_config(cls, node)` for a plain schema
(`TrainConfig`, `InversionSettings`, `BenchmarkConfig`, ...), and `drag_config_from(cfg)` for the `drag` group,
whose preset is resolved for the generator before the settings given on top apply.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import MISSING, OmegaConf

from draggan.drag import PRESETS, DragConfig

T = TypeVar("T")


def from_config(cls: type[T], node: Any) -> T:
    """The dataclass `cls` (nested dataclasses included) from a composed config node or a plain mapping, checked
    against `cls` as Hydra checks it (an unknown key or a wrongly typed value is an error)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), node))


# The `drag` config group: a preset (recommended, paper or official; see `DragConfig.preset`) and every
# `DragConfig` setting, typed as there, which a user may give on top of it (`drag.lr=0.01`); one left `???`
# is the preset's. Made from DragConfig's fields, so that the two never drift apart; `drag_config_from`
# turns it into a `DragConfig`.
_DRAG_TYPES = typing.get_type_hints(DragConfig)
DragSettings = dataclasses.make_dataclass(
    "DragSettings",
    [("preset", str, field(default="recommended"))]
    + [(f.name, _DRAG_TYPES[f.name], field(default=MISSING)) for f in dataclasses.fields(DragConfig)],
)
DragSettings.__doc__ = f"The `drag` config group: a preset ({', '.join(PRESETS)}) and DragConfig settings on top."
DragSettings.__module__ = __name__  # importable, and so picklable (the submitit launcher), from here


def drag_config_from(cfg, generator: str | None = None) -> DragConfig:
    """The drag settings of a composed config: the preset that `drag=` names (`recommended`, the default: the
    paper's with `generator`'s own, see `DragConfig.for_generator`; `paper`; `official`), then every
    `drag.<setting>` the config gives. `generator` defaults to `cfg.generator`."""
    config = DragConfig.preset(cfg.drag.preset, generator=cfg.generator if generator is None else generator)
    return dataclasses.replace(config, **given_drag_settings(cfg))


def given_drag_settings(cfg) -> dict[str, Any]:
    """The `drag.<setting>`s a composed config sets (not left to its preset)."""
    drag = cfg.drag
    return {f.name: OmegaConf.to_container(drag[f.name]) if OmegaConf.is_config(drag[f.name]) else drag[f.name]
            for f in dataclasses.fields(DragConfig) if not OmegaConf.is_missing(drag, f.name)}


@dataclass
class EditConfig:
    """`scripts/drag.py` (conf/edit.yaml; `draggan.edit.run_drag`)."""

    generator: str | None = None  # registered name, path or URL of a checkpoint, or random:RES[:SEED] (untrained);
    # None = toy-faces-64, or with resume the saved session's generator
    drag: DragSettings = field(default_factory=DragSettings)
    seed: int = 0  # z of the image to edit
    truncation_psi: float = 0.7
    points: Any = None  # [[x, y, tx, ty], ...] or the path of a JSON file holding that list; with resume, new points
    mask: str | None = None  # PNG of the region allowed to move (white = may move)
    device: str = "auto"  # auto, cpu, cuda, mps
    frame_every: int = 2  # render a frame of the animation every N steps
    video: str = "gif"  # gif or mp4
    resume: str | None = None  # folder of a saved session to continue (with new points: a new segment from its end)
    rollback_to: int | None = None  # with resume: first return to the state after this step
    progress: bool = True
