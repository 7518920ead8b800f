"""The library's FreeDrag against its authors' rules, one departure at a time (issue 25).

Ling et al., "FreeDrag: Feature Dragging for Reliable Point-based Image Editing", CVPR 2024. The library's
recommended FreeDrag departs from the authors' GAN code in a few named rules (`FreeDragOptions`, the learning rate
of `DragConfig`; docs/freedrag-official.md lists them). This ablation starts from the recommended settings of a
generator and sets one rule at a time to the authors' (`DEVIATIONS`), then runs the authors' whole `official`
preset, and measures each setting three ways:

- Table 1 (`eval.landmarks.landmark_manipulation`, the paper's landmark protocol): mean distance and steps for 1
  and 5 points, and the change of the image outside the handle -> target paths (`eval.locality`);
- the mouth drag on a model the settings were not chosen on (`eval.mouth.mouth_drag`: share of the 6 px left);
- the masked drag (`eval.masks.masked_drag`), for the rows where a mask matters (the mask term): the distance
  left, the landmarks' motion and the pixel change outside the mask.

Every pair, face and seed is the same in every row, so the rows differ by their setting alone; the per-pair
differences to the recommended row are kept for a paired comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from draggan.networks import Generator
from draggan.settings import DragConfig
from eval import tables

AUTHORS_LR = 2e-3  # the authors' Adam learning rate (hard-coded in `free_drag`)


@dataclass(frozen=True)
class Deviation:
    """One departure of the recommended FreeDrag from the authors' code."""

    key: str  # short name (the option's, or `lr`)
    option: str  # the setting, as a user writes it
    library: str  # the library's value, in words
    authors: str  # the authors' value, in words
    to_authors: Callable[[DragConfig, Generator], DragConfig]  # the recommended config with this rule set to theirs
    masked_only: bool = False  # the rule acts only with a mask (Table 1 and the mouth drag have none)


def _option(name: str, value) -> Callable[[DragConfig, Generator], DragConfig]:
    def flip(cfg: DragConfig, G: Generator) -> DragConfig:
        return cfg.replace(method_options={**cfg.method_options, name: value})

    return flip


def _authors_lr(cfg: DragConfig, G: Generator) -> DragConfig:
    """lr 2e-3 as set, with every other value the small-generator rule gives `G` (its stop distance) kept."""
    adapted, _ = cfg.adapted_to(G)
    return cfg.replace(lr=AUTHORS_LR, small_generator_rule=False, stop_distance=adapted.stop_distance)


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("sampler", "method_options.sampler", "resized (pixel centres)", "raw (p h / H)", _option("sampler", "raw")),
    Deviation("patch_px", "method_options.patch_px", "r1 (0.75 cells)", "3 image px", _option("patch_px", 3.0)),
    Deviation("arrived_in_loss", "method_options.arrived_in_loss", "false", "true", _option("arrived_in_loss", True)),
    Deviation("arrival", "method_options.arrival", "library (stop distance, L < l/4)",
              "official (< 1 px, L <= l/4)", _option("arrival", "official")),
    Deviation("late_cut", "method_options.late_cut", "none", "10", _option("late_cut", 10)),
    Deviation("mask_term", "method_options.mask_term", "session (squared, relative, 1-cell margin, lambda 20)",
              "official (lambda x mean abs(F - F0) over the held cells)", _option("mask_term", "official"), masked_only=True),
    Deviation("lr", "lr", "1e-2 below 128 px (2e-3 from 128 px)", "2e-3", _authors_lr),
    Deviation("l_expected", "method_options.l_expected", "measured (1-px move on the first image)", "0.3 (faces)",
              _option("l_expected", 0.3)),
)


def row_configs(G: Generator) -> list[tuple[str, DragConfig, bool]]:
    """(key, config, masked_only) of every row: the recommended FreeDrag of `G`, each rule where today's default
    departs from the authors' set to theirs (a rule the default already follows has no row: it would be the
    recommended row again), and the authors' `official` preset."""
    base = DragConfig.for_generator(G, method="freedrag")
    rows = [("recommended", base, False)]
    rows += [(d.key, d.to_authors(base, G), d.masked_only) for d in DEVIATIONS if library_keeps(d.key)]
    rows.append(("official", DragConfig.preset("official", generator=G, method="freedrag"), False))
    return rows


def table1_row(G, detector, cfg: DragConfig, *, pairs: int, points=(1, 5), seed: int = 0) -> dict:
    """Table 1 of one setting: per point count, MD, steps, change outside the paths, seconds, and each pair's MD."""
    from eval.landmarks import landmark_manipulation

    out = {}
    for n in points:
        r = landmark_manipulation(G, detector, cfg, num_points=n, num_pairs=pairs, seed=seed, progress=False)
        out[str(n)] = dict(md=r.md_edit, md_no_edit=r.md_no_edit, steps=r.steps_mean, reached=r.reached,
                           change_outside=r.change_outside, seconds_per_edit=r.seconds_per_edit,
                           pair_md=[p["md_edit"] for p in r.pairs],
                           pair_change_outside=[p["change_outside"] for p in r.pairs])
    return out


def mouth_row(G, cfg: DragConfig, *, faces: int, seeds=(0, 1000)) -> dict:
    """The mouth drag of one setting on `G`: per seed, the share of the 6 px left, steps and each face's share."""
    from eval.mouth import mouth_drag

    out = {}
    for s in seeds:
        r = mouth_drag(G, cfg, num_faces=faces, seed=s)
        out[str(s)] = dict(left=r.left, steps=r.steps_mean, reached=r.reached,
                           face_left=[f["left"] for f in r.faces])
    return out


def mask_row(G, detector, cfg: DragConfig, *, faces: int, unmasked: list | None = None) -> tuple[dict, list]:
    """The masked drag of one setting (the mask check's defaults: left eye 3 px up, disc of 6 px); returns the
    figures and the faces (whose unmasked drags a row with the same unmasked behaviour may reuse)."""
    from eval.masks import masked_drag

    r = masked_drag(G, detector, cfg, seeds=range(faces), unmasked=unmasked)
    return (dict(dist_masked=r.dist_masked, dist_unmasked=r.dist_unmasked, outside_masked=r.outside_masked,
                 outside_unmasked=r.outside_unmasked, change_outside_masked=r.change_outside_masked,
                 change_outside_unmasked=r.change_outside_unmasked, steps_masked=r.steps_masked,
                 reach_ratio=r.reach_ratio, outside_ratio=r.outside_ratio), r.faces)


def paired(values: list[float], base: list[float]) -> dict:
    """Mean difference of paired values (row - recommended) and its standard error (nan entries dropped)."""
    d = np.asarray(values, float) - np.asarray(base, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return dict(mean=float("nan"), se=float("nan"), n=0)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    return dict(mean=float(d.mean()), se=se, n=int(d.size))


def config_summary(cfg: DragConfig, G: Generator) -> dict:
    """The settings a row ran with on `G` (after the generator's adaptations): what differs between rows."""
    adapted, _ = cfg.adapted_to(G)
    keys = ("feature_block", "lr", "stop_distance", "r1", "radius_unit", "lambda_mask", "mask_loss", "mask_margin",
            "handle_stop", "max_steps", "force_fp32")
    return {**{k: getattr(adapted, k) for k in keys}, "method_options": dict(adapted.method_options)}


def _cell(row: dict, base: dict | None, part: str, point: str, digits: int) -> str:
    """'value (+delta +- se)' of Table 1's `part` ('md' or 'change_outside') at `point` points against the
    recommended row, paired over the same pairs."""
    if "table1" not in row or point not in row["table1"]:
        return "-"
    value = row["table1"][point][part]
    text = f"{value:.{digits}f}"
    if base is not None and row is not base:
        d = paired(row["table1"][point][f"pair_{part}"], base["table1"][point][f"pair_{part}"])
        text += f" ({d['mean']:+.{digits}f} ± {d['se']:.{digits}f})"
    return text


def _mouth_cell(row: dict, base: dict | None, seed: str) -> str:
    """'share left (+delta +- se)' of the mouth drag's faces of `seed`, paired with the recommended row's faces."""
    m = row["mouth"][seed]
    text = f"{m['left']:.3f}"
    if base is not None and row is not base and seed in base.get("mouth", {}):
        d = paired(m["face_left"], base["mouth"][seed]["face_left"])
        text += f" ({d['mean']:+.3f} ± {d['se']:.3f})"
    return text


def markdown_table(results: dict) -> str:
    """The deviation table of docs/evaluation.md from a results file of `scripts/freedrag_deviations.py`: one line
    per row (Table 1 MD and change outside with the paired difference to the recommended row and its standard
    error, steps, the mouth drag's share left per seed, the masked drag) and whether the library keeps its rule
    (read from today's `FreeDragOptions` and `SMALL_GENERATOR`, so the column cannot go stale). A results file
    measured from other recommended settings than today's names them in `base_label`."""
    rows = results["rows"]
    base = next((r for r in rows if r["key"] == "recommended"), None)
    base_label = results.get("base_label", "recommended (the library's default)")
    about = {d.key: d for d in DEVIATIONS}
    points = sorted(base.get("table1", {}) if base is not None else {}, key=int)
    lines = []
    for r in rows:
        d = about.get(r["key"])
        name = base_label if r["key"] == "recommended" else (
            "`official` (every rule the authors')" if r["key"] == "official" else f"`{d.option}`")
        md = " / ".join(_cell(r, base, "md", p, 2) for p in points) if "table1" in r else "(no mask: as recommended)"
        steps = " / ".join(f"{r['table1'][p]['steps']:.1f}" if p in r["table1"] else "-" for p in points) \
            if "table1" in r else ""
        out = " / ".join(_cell(r, base, "change_outside", p, 3) for p in points) if "table1" in r else ""
        mouth = " / ".join(_mouth_cell(r, base, seed) for seed in r["mouth"]) if "mouth" in r else ""
        m = r.get("mask")
        mask = (f"{m['dist_masked']:.2f} px ({m['reach_ratio']:.2f}); {m['outside_masked']:.2f} px "
                f"({m['outside_ratio']:.2f}); {m['change_outside_masked']:.4f}" if m else "")
        kept = "" if d is None else ("kept" if library_keeps(d.key) else "dropped: the default is the authors' rule")
        lines.append([name, d.library if d else "", d.authors if d else "", md, steps, out, mouth, mask, kept])
    pts = " / ".join(points)
    seeds = " / ".join(str(s) for s in results.get("mouth_seeds", []))
    columns = ["setting", "library", "authors", f"Table 1 MD {pts} pt (paired difference ± s.e.)", f"steps {pts} pt",
               f"change outside {pts} pt (difference ± s.e.)", f"mouth: share left (difference ± s.e.), seed {seeds}",
               "masked drag: left (/ unmasked); landmarks outside (/ unmasked); change outside the mask",
               "the library's rule"]
    return tables.markdown_table(columns, lines)


def library_keeps(key: str) -> bool:
    """Whether the library's default FreeDrag still departs from the authors' rule `key` (today's defaults)."""
    from draggan.methods.freedrag import FreeDragOptions
    from draggan.presets import SMALL_GENERATOR

    if key == "lr":
        return SMALL_GENERATOR["lr"] != AUTHORS_LR
    authors = {"sampler": "raw", "patch_px": 3.0, "arrived_in_loss": True, "arrival": "official", "late_cut": 10,
               "mask_term": "official", "l_expected": 0.3}[key]
    return getattr(FreeDragOptions(), key) != authors
