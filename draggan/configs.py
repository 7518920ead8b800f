"""Schemas of the drag command (`scripts/drag.py`), of the `drag`, `drag_method` and `logger` config groups, the one
conversion from a composed config to library objects, and `register_configs`, which registers the library's
schemas in Hydra's ConfigStore (the applications', inversion's and evaluation's modules register theirs on top:
`draggan.apps.configs`, `inversion.configs`, `eval.configs`, each calling the one below it, so a script registers
what its layer needs and imports nothing above it: `scripts/download.py` imports neither `eval` nor `inversion`).

Each YAML file in conf/ extends a schema, so a misspelt key fails when the config is composed instead of being
ignored. The `drag_method` group is made from the method registry (`draggan.methods.available()`): one entry per
registered method, which sets `drag.method`; a method's options are its `Options` dataclass (their defaults are
written there only), given on top as `drag.method_options.<name>=...`.

A composed config becomes a library object in one way: `from_config(cls, node)` for a plain schema
(`TrainConfig`, `InversionSettings`, `BenchmarkConfig`, ...), and `drag_config_from(cfg)` for the `drag` group,
which `draggan.settings.resolve_drag` resolves (preset, method, the generator's registry entry, then the settings
given), remembering where each value came from (`drag_config.yaml`, `explain=true`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from omegaconf import MISSING, OmegaConf

from draggan.loggers import LoggerConfig
from draggan.methods.configs import UCLTTrainConfig
from draggan.methods.registry import available
from draggan.presets import PRESET_NAMES
from draggan.settings import DragConfig, resolve_drag, settings_record, settings_table

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


def _open_mapping():
    """An empty mapping that takes new keys on the command line (`drag.method_options.l_expected=0.3`, without `+`):
    which names a method has is its `Options` dataclass's business, checked when its session is built."""
    return OmegaConf.create({}, flags={"struct": False})

DragSettings = dataclasses.make_dataclass(
    "DragSettings",
    [("preset", str, field(default="recommended"))]
    + [(f.name, _DRAG_TYPES[f.name], field(default=MISSING)) for f in dataclasses.fields(DragConfig)
       if f.name != "method_options"]
    + [("method_options", Any, field(default_factory=_open_mapping))],  # the method's own: any of its option names
)
DragSettings.__doc__ = f"The `drag` config group: a preset ({', '.join(PRESET_NAMES)}) and DragConfig settings on top."
DragSettings.__module__ = __name__  # importable, and so picklable (the submitit launcher), from here


def drag_config_from(cfg, generator=None) -> DragConfig:
    """The drag settings of a composed config (`draggan.settings.resolve_drag`): the preset that `drag=` names
    (`recommended`, the default: the library's rules with `generator`'s registry settings and the method FreeDrag;
    `paper`; `official`), of the method that `drag_method=` or `drag.method=` names, then every `drag.<setting>`
    the config gives. `generator` (a name or a Generator) defaults to `cfg.generator`."""
    return resolve_drag(cfg.generator if generator is None else generator, preset=cfg.drag.preset,
                        overrides=given_drag_settings(cfg))


def given_drag_settings(cfg) -> dict[str, Any]:
    """The `drag.<setting>`s a composed config sets (not left to its preset); `method_options` when not empty."""
    drag = cfg.drag
    given = {f.name: OmegaConf.to_container(drag[f.name]) if OmegaConf.is_config(drag[f.name]) else drag[f.name]
             for f in dataclasses.fields(DragConfig) if not OmegaConf.is_missing(drag, f.name)}
    if not given.get("method_options"):
        given.pop("method_options", None)
    return given


def explain_drag(cfg, generator=None) -> str:
    """What `explain=true` prints: every drag setting the command would run with, one line each with its source.
    `generator` (default: the config's, else the default model) is loaded when it is on this machine, so that the
    adaptations to it show; a checkpoint that would have to be downloaded is not, and the table says so."""
    from draggan.loading import load_generator
    from draggan.registry import DEFAULT_MODEL

    name = generator if generator is not None else (cfg.get("generator") or DEFAULT_MODEL)
    try:
        G = name if isinstance(name, torch.nn.Module) else load_generator(name, device="cpu", download=False)
        note = ""
    except (OSError, RuntimeError, ValueError) as e:
        G, note = None, f"\n(not adapted to the generator: {e})"
    config = drag_config_from(cfg, G if G is not None else name)
    return f"drag settings for {getattr(G, 'model_name', None) or name}:\n" + settings_table(
        settings_record(config, G)) + note


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
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)
    progress: bool = True
    explain: bool = False  # print every drag setting this command would run with, and where it came from; then stop


def register_configs() -> None:
    """Register the library's schemas in Hydra's ConfigStore: `edit`, `train_uclt`, and the `drag`, `drag_method`
    (one entry per registered method) and `logger` groups."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, name, node in schemas():
        cs.store(group=group, name=name, node=node)
    for method in available():
        cs.store(group="drag_method", name=method, node={"method": method}, package="drag")


def schemas() -> list[tuple[str | None, str, type]]:
    """(group, name, schema) of the library's configs; conf/*.yaml and conf/<group>/*.yaml extend them."""
    return [(None, "edit_schema", EditConfig), (None, "train_uclt_schema", UCLTTrainConfig),
            (None, "drag_schema", DragSettings), (None, "logger_schema", LoggerConfig)]
