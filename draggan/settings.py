"""The drag settings: `DragConfig`, the one resolver that makes a run's settings, and where each value came from.

Pan et al., "Drag Your GAN", SIGGRAPH 2023 gives the defaults (`DragConfig()`: the paper's settings). A run's
settings are resolved in layers, each recorded as the source of the values it set:

    default -> method:<name> -> preset:<name> -> model:<name> -> override -> adapted:<why>

`default`: `DragConfig`'s field defaults; `method:<name>`: the method's own option defaults (its `Options`
dataclass); `preset:<name>`: the preset's values (`draggan.presets`, or the method's own preset); `model:<name>`:
the settings the model registry gives the generator (the `recommended` preset only); `override`: what the caller
or the command line set; `adapted:<why>`: a setting that cannot apply to the generator as it is, changed by a
stated rule (`DragConfig.adapted_to`). `resolve_drag` does all of it; `settings_record` turns a config into the
table `{name: {value, source}}` that every run folder keeps as `drag_config.yaml` (and W&B logs).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from draggan.methods.registry import get_method
from draggan.presets import MODEL_PRESET, SMALL_GENERATOR, default_method
from draggan.registry import MODELS

if TYPE_CHECKING:  # annotations only
    import os
    from pathlib import Path

    from draggan.networks import Generator

REFERENCE_RESOLUTION = 512  # r1 and r2 are given in pixels of an image of this height
PAPER_FEATURE_BLOCK = 5  # the paper's "6th block": 128x128 in generators of 128 px and more
SETTINGS_FILE = "drag_config.yaml"  # the record of a run's settings and their sources, in every run folder


@dataclass
class DragConfig:
    """Every setting of a drag shared by the methods; the defaults are the paper's (DragGAN).

    `DragConfig.preset(name, generator=G, method=...)` is a named preset (`recommended`, the library's default;
    `paper`; `official`), `DragConfig.for_generator(G)` the recommended one for a generator. A method's own
    settings are `method_options` (only those set: the method's `Options` dataclass holds the rest). Where a setting
    cannot apply to a generator literally, `DragSession` adapts it by the rules of `adapted_to` and says so.
    """

    feature_block: int = PAPER_FEATURE_BLOCK  # synthesis block whose output is the feature map (0 = 4x4)
    r1: float = 3.0  # motion supervision radius, in pixels of a 512-px image
    r2: float = 12.0  # tracking search half-width, in pixels of a 512-px image
    min_radius: float | None = 1.0  # scaled radii are never below this (None = the official rounding, 0 below 86 px)
    radius_unit: str = "px512"  # r1, r2 in 'px512' (pixels of a 512-px image: paper, official) or 'cells' (of the feature map)
    tracking_distance: str = "l1"  # 'l1' (paper) or 'l2' (official code)
    lambda_mask: float = 20.0  # weight of the term holding features outside the mask
    mask_loss: str = "l1"  # the hold term: 'l1' (paper, official) or 'l2' (squared, relative to the first features' RMS)
    mask_margin: float = 0.0  # features within this many feature cells of the movable region are not held
    lr: float = 2e-3  # Adam learning rate (paper 2e-3; official GUI 1e-3)
    latent_space: str = "w+"  # 'w+' (each of the first rows free) or 'w' (one shared row)
    optimize_ws: int = 6  # number of leading ws rows optimised; the rest stay at their start
    stop_distance: float = 1.0  # done when every handle is within this many pixels of its target...
    stop_distance_many: float = 2.0  # ...or this many with more than `many_handles` handles
    many_handles: int = 5
    official_stop_rule: bool = False  # use the official max(2, 2h/512) px instead of the two above
    handle_stop: str = "together"  # 'together' (paper): done when every handle is close at one step; 'each': done
    # when every handle has been close at some step (a handle that drifts off again is still pushed back meanwhile)
    small_generator_rule: bool = False  # below 128 px, SMALL_GENERATOR's lr and stop (where left at the paper's values)
    handle_patience: int = 0  # 'each' with several handles: a handle not closer than its best for this many steps is
    # given up (no longer pushed, and counted as finished), so that one stalled handle does not hold the others'
    # edit to the step limit (0 = never)
    official_grid: bool = False  # reproduce the official pixel grid quirk of the motion disk
    max_steps: int = 300  # step limit of `run`
    noise_mode: str = "const"  # noise of the synthesis
    force_fp32: bool = False  # compute every synthesis block in float32, ignoring the generator's num_fp16_res (CUDA)
    divergence_ratio: float = 10.0  # stop (keeping the last good state) when the features' RMS grows this much
    cuda_graph: bool = True  # CUDA: replay each step of a capture-safe method as one captured graph
    stall_steps: int = 50  # say that the drag stalled after this many steps without progress (see `stall`; 0 = never)
    method: str = "draggan"  # a registered method (`draggan.methods.available()`) or 'module:Class' (a user's own)
    method_options: dict[str, Any] = field(default_factory=dict)  # the method's settings that differ from its Options

    @staticmethod
    def preset(name: str, generator: "str | Generator | None" = None, method: str | None = None) -> "DragConfig":
        """The preset `name` (recommended, paper, official) of `method` (default: the preset's, FreeDrag for
        `recommended`, DragGAN otherwise); `recommended` adds the registry's settings for `generator`."""
        return resolve_drag(generator, preset=name, method=method)

    @staticmethod
    def for_generator(generator: "str | Generator | None", method: str | None = None) -> "DragConfig":
        """The library's default for `generator` (`preset('recommended', generator)`): a registered name, or a
        Generator that `load_generator` made from one (it keeps the name as `G.model_name`). Anything else (a path,
        a URL, an untrained network) has no settings of its own and gets the library's rules alone."""
        return resolve_drag(generator, preset=MODEL_PRESET, method=method)

    def replace(self, **changes: Any) -> "DragConfig":
        """`dataclasses.replace` that keeps the record of where the unchanged values came from (the changed ones
        are `override`s); `dataclasses.replace` itself keeps only the values."""
        out = dataclasses.replace(self, **changes)
        origin = self.__dict__.get("_origin")
        if origin is not None:
            out.__dict__["_origin"] = origin
        return out

    def adapted_to(self, G: "Generator") -> tuple["DragConfig", list[str]]:
        """This config made concrete for `G`, and what was changed, in words (`DragSession` warns of each).

        The rules, for settings that cannot apply to `G` literally:
        - below 128 px, with `small_generator_rule`: `SMALL_GENERATOR`'s lr and stop distance replace the paper's
          (where left at the paper's values);
        - the feature block: the paper's block 5 (128x128 from 128 px up) does not exist in a generator
          below 128 px; there the block of half the image size is used (block 3, 32x32, at 64 px: the
          block the landmark measurement chose for toy-faces-64). Any other missing block is an error.
        - the radii: the official rounding (`min_radius=None`) scales r1 = 3 to 0 px below 86 px (r2 = 12
          below 22 px), where the official code has no motion disk; there a radius is 1 px (`min_radius=1`),
          which leaves every radius that rounds to 1 px or more as the official code has it.
        """
        cfg, changes = self._adaptations(G)
        return cfg, [note for _, _, note in changes]

    def _adaptations(self, G: "Generator") -> tuple["DragConfig", list[tuple[str, str, str]]]:
        """`adapted_to`, with each change as (setting, short reason, the sentence said)."""
        cfg, changes = copy.deepcopy(self), []
        blocks = G.synthesis.block_resolutions
        if cfg.small_generator_rule and len(blocks) <= PAPER_FEATURE_BLOCK:
            paper = DragConfig()
            for key, value in SMALL_GENERATOR.items():
                if getattr(cfg, key) == getattr(paper, key) and value != getattr(paper, key):
                    setattr(cfg, key, value)
                    changes.append((key, "below 128 px",
                                    f"{key}={value:g} for a generator below 128 px (the recommended settings' rule)"))
        if not 0 <= cfg.feature_block < len(blocks):
            if cfg.feature_block != PAPER_FEATURE_BLOCK:
                raise ValueError(f"feature_block={cfg.feature_block}, but this generator has blocks "
                                 f"0..{len(blocks) - 1} (0 = 4x4)")
            cfg.feature_block = max(len(blocks) - 2, 0)
            res = blocks[cfg.feature_block]
            changes.append(("feature_block", "no block 5 below 128 px",
                            f"the paper's feature block {PAPER_FEATURE_BLOCK} does not exist in this {G.img_height}-px "
                            f"generator (blocks 0..{len(blocks) - 1}); using block {cfg.feature_block} ({res}x{res}, "
                            "half the image size); set feature_block to choose another"))
        if cfg.min_radius is None and cfg.radius_unit == "px512":
            zero = [name for name, r in (("r1", cfg.r1), ("r2", cfg.r2)) if cfg.radius_px(r, G.img_height) <= 0]
            if zero:
                cfg.min_radius = 1.0
                changes.append(("min_radius", "0-px radius", f"the official rounding scales {' and '.join(zero)} to "
                                f"0 px at {G.img_height} px, where the official code cannot drag; using 1 px "
                                "(min_radius=1)"))
        return cfg, changes

    def radius_px(self, r: float, height: int, feature_resolution: int | None = None) -> float:
        """A radius in image pixels: given at 512 px, scaled to an image of `height` like the official code
        (`radius_unit='px512'`), or given in cells of a `feature_resolution`-high feature map ('cells': a cell
        is height / feature_resolution pixels; not rounded, the disk's test is a strict `<`)."""
        if self.radius_unit == "cells":
            if feature_resolution is None:
                raise ValueError("radius_unit='cells' needs the feature map's resolution")
            scaled = r * height / feature_resolution
        else:
            scaled = round(r / REFERENCE_RESOLUTION * height)
        return scaled if self.min_radius is None else max(scaled, self.min_radius)

    def stop_px(self, num_handles: int, height: int) -> float:
        """The stop distance in pixels for `num_handles` handles in an image of `height` pixels."""
        if self.official_stop_rule:
            return max(2 / REFERENCE_RESOLUTION * height, 2)
        return self.stop_distance_many if num_handles > self.many_handles else self.stop_distance

    def validate(self, *, allow_import: bool = True) -> None:
        """Every setting of its type and within its range (NaN and infinities included), and a method that can be
        found (a registered one only, without `allow_import`), or a one-line ValueError."""
        from draggan.limits import MAX_DRAG_STEPS
        from draggan.networks import NOISE_MODES

        def number(name: str, low: float, high: float = math.inf, *, whole: bool = False,
                   low_open: bool = False, none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and none:
                return
            ok = isinstance(v, int) if whole else isinstance(v, (int, float))
            ok = ok and not isinstance(v, bool) and math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
            if not ok:
                kind = "a whole number" if whole else "a finite number"
                span = f"above {low:g}" if low_open and high == math.inf else (
                    f"in ({low:g}, {high:g}]" if low_open else f"in [{low:g}, {high:g}]")
                raise ValueError(f"drag setting {name}={v!r} must be {kind} {span}")

        number("feature_block", 0, 32, whole=True)
        number("r1", 0, 4096, low_open=True)
        number("r2", 0, 4096, low_open=True)
        number("min_radius", 0, 4096, none=True)
        number("lambda_mask", 0)
        number("mask_margin", 0, 4096)
        number("lr", 0, low_open=True)
        number("optimize_ws", 1, 64, whole=True)
        number("stop_distance", 0, 4096)
        number("stop_distance_many", 0, 4096)
        number("many_handles", 0, 1 << 16, whole=True)
        number("max_steps", 0, MAX_DRAG_STEPS, whole=True)
        number("divergence_ratio", 1, low_open=True)
        number("stall_steps", 0, MAX_DRAG_STEPS, whole=True)
        number("handle_patience", 0, MAX_DRAG_STEPS, whole=True)
        for name in ("official_stop_rule", "official_grid", "force_fp32", "cuda_graph", "small_generator_rule"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"drag setting {name}={getattr(self, name)!r} must be true or false")
        for name, choices in (("tracking_distance", ("l1", "l2")), ("latent_space", ("w", "w+")),
                              ("mask_loss", ("l1", "l2")), ("handle_stop", ("together", "each")),
                              ("radius_unit", ("px512", "cells")), ("noise_mode", NOISE_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"drag setting {name}={getattr(self, name)!r} must be one of {', '.join(choices)}")
        if not isinstance(self.method_options, dict):
            raise ValueError(f"drag setting method_options={self.method_options!r} must be a mapping of the method's settings")
        if not isinstance(self.method, str):
            raise ValueError(f"drag setting method={self.method!r} must be a method's name")
        get_method(self.method, allow_import=allow_import)  # a one-line ValueError for an unknown name


# ---------------------------------------------------------------------------------------------------------------
# Resolution, with provenance

def _generator_name(generator: "str | Generator | None") -> str | None:
    if isinstance(generator, torch.nn.Module):
        return getattr(generator, "model_name", None)
    return None if generator is None else str(generator)


def _option_defaults(method_cls: type) -> dict[str, Any]:
    options = getattr(method_cls, "Options", None)
    return dataclasses.asdict(options()) if options is not None else {}


def resolve_drag(generator: "str | Generator | None" = None, *, preset: str = MODEL_PRESET, method: str | None = None,
                 overrides: dict[str, Any] | None = None) -> DragConfig:
    """The settings of a drag: `DragConfig`'s defaults, then the method's, the preset's, the model registry's for
    `generator` (preset `recommended` only), then `overrides` (`method` and `method_options` included); the result
    remembers where each value came from (`settings_record`). The adaptation to the generator is the session's
    (`DragConfig.adapted_to`), and `settings_record(config, G)` records it too.

    `method` (or `overrides['method']`) chooses the method; left out, the preset's (`draggan.presets`)."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(DragConfig)})
    if unknown:
        raise ValueError(f"no drag setting {', '.join(unknown)}")
    values = dataclasses.asdict(DragConfig())
    sources = {name: "default" for name in values}
    chosen = overrides.get("method", method)
    values["method"] = chosen if chosen is not None else default_method(preset)
    sources["method"] = "override" if chosen is not None else f"preset:{preset}"
    method_cls = get_method(values["method"])
    label = method_cls.name or values["method"]
    options: dict[str, Any] = {}
    for key in _option_defaults(method_cls):
        sources[f"method_options.{key}"] = f"method:{label}"
    presets = method_cls.presets
    if preset not in presets:
        raise ValueError(f"unknown drag preset {preset!r} for method {label!r} (expected one of {', '.join(presets)})")

    def apply(settings: dict[str, Any], source: str) -> None:
        for key, value in settings.items():
            if key == "method_options":
                for k, v in dict(value).items():
                    options[k] = copy.deepcopy(v)
                    sources[f"method_options.{k}"] = source
            elif key != "method":
                values[key] = copy.deepcopy(value)
                sources[key] = source

    apply(presets[preset], f"preset:{preset}")
    name = _generator_name(generator)
    info = MODELS.get(name) if name is not None and preset == MODEL_PRESET else None
    if info is not None:
        apply(info.drag, f"model:{name}")
    apply({k: v for k, v in overrides.items() if k != "method"}, "override")
    values["method_options"] = options
    config = DragConfig(**values)
    config.__dict__["_origin"] = (dataclasses.asdict(config), sources)
    return config


def settings_record(config: DragConfig, G: "Generator | None" = None) -> dict[str, Any]:
    """`{setting: {value, source}}` of `config` (adapted to `G` when given), with the method's options (all of them,
    the defaults included) under `method_options`: what `drag_config.yaml` holds.

    The sources are those `resolve_drag` recorded; a value changed since (by `DragConfig.replace` or by hand) is an
    `override`. A config that `resolve_drag` did not make (built in Python) is read against `DragConfig()`'s defaults:
    a value that differs from its default is an `override`."""
    origin = config.__dict__.get("_origin")
    if origin is None:
        base_values = dataclasses.asdict(DragConfig())
        base_sources = {name: "default" for name in base_values}
    else:
        base_values, base_sources = origin
    final, changes = (config, []) if G is None else config._adaptations(G)
    adapted = {key: f"adapted:{why}" for key, why, _ in changes}
    record: dict[str, Any] = {}
    for f in dataclasses.fields(DragConfig):
        if f.name == "method_options":
            continue
        value = getattr(final, f.name)
        same = f.name in base_values and getattr(config, f.name) == base_values[f.name]
        source = adapted.get(f.name) or (base_sources.get(f.name, "default") if same else "override")
        record[f.name] = {"value": _plain(value), "source": source}
    method_cls = get_method(config.method)
    label = method_cls.name or config.method
    base_options = base_values.get("method_options", {})
    options = {}
    for key, default in _option_defaults(method_cls).items():
        if key in config.method_options:
            value = config.method_options[key]
            same = key in base_options and base_options[key] == value
            source = base_sources.get(f"method_options.{key}", "override") if same else "override"
        else:
            value, source = default, f"method:{label}"
        options[key] = {"value": _plain(value), "source": source}
    for key, value in config.method_options.items():  # names the method does not have (its session refuses them)
        options.setdefault(key, {"value": _plain(value), "source": "override"})
    record["method_options"] = options
    return record


_SOURCE = re.compile(r"^(default|override|(method|preset|model|adapted):[^\n]{1,200})$")


def with_sources(config: DragConfig, record: Any) -> DragConfig:
    """`config` with the sources of a saved `settings_record` (from a session file: a malformed or unknown entry is
    read as an `override`; anything but a mapping leaves `config` as it is)."""
    if not isinstance(record, dict):
        return config
    values = dataclasses.asdict(config)

    def source(entry: Any) -> str:
        src = entry.get("source") if isinstance(entry, dict) else None
        return src if isinstance(src, str) and _SOURCE.fullmatch(src) else "override"

    sources = {name: source(record.get(name)) for name in values if name != "method_options"}
    options = record.get("method_options")
    if isinstance(options, dict):
        for key in config.method_options:
            sources[f"method_options.{key}"] = source(options.get(key))
    out = copy.deepcopy(config)
    out.__dict__["_origin"] = (values, sources)
    return out


def _plain(value: Any) -> Any:
    """A value as YAML and JSON hold it (tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def settings_table(record: dict[str, Any]) -> str:
    """The record as aligned text, one setting a line: `name  value  source` (what `explain=true` prints)."""
    rows = [(name, entry["value"], entry["source"]) for name, entry in record.items() if name != "method_options"]
    rows += [(f"method_options.{name}", entry["value"], entry["source"])
             for name, entry in record.get("method_options", {}).items()]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(repr(r[1]) if isinstance(r[1], str) else str(r[1])) for r in rows)
    return "\n".join(f"{n:<{width}}  {(repr(v) if isinstance(v, str) else str(v)):<{vwidth}}  {s}" for n, v, s in rows)


def write_settings(record: dict[str, Any], folder: "str | os.PathLike") -> "Path":
    """Write `record` as `drag_config.yaml` into `folder` (atomically); returns its path."""
    from pathlib import Path

    import yaml

    from draggan.files import atomic_write

    text = ("# The drag settings of this run: each value and where it came from (default, method:<name>, "
            "preset:<name>,\n# model:<name>, override, adapted:<why>); see draggan/settings.py.\n"
            + yaml.safe_dump(record, sort_keys=False, default_flow_style=None))
    path = Path(folder) / SETTINGS_FILE
    return atomic_write(path, lambda p: p.write_text(text))
