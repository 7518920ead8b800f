"""`scripts/evaluate.py`: one benchmark with one tracker, written as `results.json` + `results.md`.

Benchmarks (the `benchmark` config group): `landmarks` (the paper's Table 1 protocol, for each point
set), `paired` (Table 2, paired image reconstruction) and `tracking` (every tracker of
`benchmark.trackers` against re-detected landmarks during the drags). The `drag_method` group chooses
the drag method (`draggan.methods`); the `tracker` group the tracker inside DragGAN's loop for the first two. A tracker or metric whose weights are
missing is reported as unavailable, with the reason, in the results: a sweep over trackers goes on.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.configs import drag_config_from, from_config
from draggan.files import atomic_write
from draggan.loading import load_generator
from draggan.methods import get_method
from draggan.session_io import json_safe
from draggan.settings import settings_record, write_settings
from draggan.threads import synthesis_macs, use_threads
from draggan.weights import WeightsUnavailable
from eval.configs import BenchmarkConfig, TrackerConfig
from eval.shards import FID_FEATURES, Shard, parse_shard, shard_device, under_torchrun
from eval.tables import markdown_table

BENCHMARKS = ("landmarks", "paired", "tracking")


def _save_examples(examples: list[dict], out: Path, logger, tag: str) -> list[str]:
    from PIL import Image

    from draggan.render import save_animation, save_png, to_uint8

    folder = out / "examples"
    folder.mkdir(exist_ok=True)
    paths = []
    for i, ex in enumerate(examples):
        if not ex["frames"]:
            continue
        first, last = ex["frames"][0], ex["frames"][-1]
        panels = [first, last]
        if ex.get("target_image") is not None:  # the image whose points are the targets
            target = Image.fromarray(to_uint8(ex["target_image"])).resize(first.size, Image.NEAREST)
            panels.append(target)
        pair = Image.new("RGB", (first.width * len(panels), first.height))
        for k, panel in enumerate(panels):
            pair.paste(panel, (k * first.width, 0))
        png = save_png(pair, folder / f"{tag}_{i:02d}.png")
        gif = save_animation(ex["frames"], folder / f"{tag}_{i:02d}.gif")
        logger.log_image(f"examples/{tag}_{i:02d}_before_after_target", png, i)
        logger.log_video(f"examples/{tag}_{i:02d}_drag", gif, i)
        paths += [str(png), str(gif)]
    return paths


def _device_of(G) -> torch.device:
    """Everything of a run follows the generator's device (chosen once, by `device=`)."""
    return next(G.parameters()).device


def _lpips_or_note(cfg, b: BenchmarkConfig, G) -> tuple[Any, str | None]:
    """(LPIPS, None), or (None, why not) when its weights are missing."""
    from inversion.lpips_loss import LPIPSWeightsError, load_lpips

    try:
        return load_lpips(b.lpips_net, download=cfg.download_weights, device=_device_of(G)), None
    except LPIPSWeightsError as e:
        print(f"evaluate: LPIPS left out: {e}")
        return None, str(e)


def _landmarks(cfg, b: BenchmarkConfig, G, drag_config, tracker, out: Path, logger, shard: Shard) -> dict:
    from eval.detectors import load_landmark_detector
    from eval.landmarks import landmark_manipulation, point_indices

    detector = load_landmark_detector(cfg.detector, _device_of(G))
    lpips, lpips_note = _lpips_or_note(cfg, b, G)  # for the edit's locality
    fid_net, fid_note = None, None
    if b.fid:
        from eval.fid import load_fid_inception

        try:
            fid_net = load_fid_inception(download=cfg.download_weights)
        except WeightsUnavailable as e:
            fid_note = str(e)
            print(f"evaluate: FID left out: {e}")
    rows, pairs, examples, fid_features = [], [], [], {}
    for n in b.num_points:
        point_indices(detector, n)  # a clear error for a set the detector lacks
        r = landmark_manipulation(G, detector, drag_config, num_points=n, num_pairs=cfg.n_pairs, seed=cfg.seed,
                                  truncation_psi=b.truncation_psi, tracker=tracker,
                                  keep_images=fid_net is not None, examples=cfg.examples, lpips=lpips,
                                  progress=cfg.progress, shard=shard)
        fid_value = None
        if fid_net is not None:
            from eval.fid import fid, inception_features

            if shard.whole:
                fid_value = fid(fid_net, r.images_after, r.images_before)
            else:  # FID is not a mean over pairs: the report computes it from every shard's features
                fid_features.update({f"{n}_after": inception_features(fid_net, r.images_after),
                                     f"{n}_before": inception_features(fid_net, r.images_before),
                                     f"{n}_pairs": np.array([p["pair"] for p in r.pairs])})
        rows.append(dict(num_points=n, md_edit=r.md_edit, md_no_edit=r.md_no_edit, ratio=r.ratio,
                         seconds_per_edit=r.seconds_per_edit, steps_mean=r.steps_mean, reached=r.reached,
                         fid=fid_value, change_outside=r.change_outside, lpips_outside=r.lpips_outside,
                         locality_margin_px=r.locality_margin_px))
        pairs += [dict(num_points=n, **p) for p in r.pairs]
        examples += _save_examples(r.examples, out, logger, f"{n}pt")
    if fid_features:
        np.savez(out / FID_FEATURES, **fid_features)
    table = markdown_table(["points", "MD edit (px)", "MD no edit (px)", "ratio", "change outside", "LPIPS outside",
                            "time/edit (s)", "steps", "reached", "FID"],
                           [[r["num_points"], r["md_edit"], r["md_no_edit"], r["ratio"], r["change_outside"],
                             r["lpips_outside"], r["seconds_per_edit"], r["steps_mean"], r["reached"], r["fid"]]
                            for r in rows])
    return dict(rows=rows, pairs=pairs, table=table, examples=examples, fid_note=fid_note, lpips_note=lpips_note)


def _paired(cfg, b: BenchmarkConfig, G, drag_config, tracker, out: Path, logger, shard: Shard) -> dict:
    from eval.flow import make_flow
    from eval.paired import paired_reconstruction

    flow = make_flow(b.flow, weights=b.flow_weights, download=cfg.download_weights, device=_device_of(G))
    reason = flow.availability()
    if reason is not None:
        raise WeightsUnavailable(f"flow estimator {b.flow} is unavailable: {reason}")
    lpips, note = _lpips_or_note(cfg, b, G)
    r = paired_reconstruction(G, drag_config, flow, tracker=tracker, num_pairs=cfg.n_pairs, num_points=b.paired_points,
                              seed=cfg.seed, truncation_psi=b.truncation_psi, perturb_rows=b.perturb_rows,
                              perturb_strength=b.perturb_strength, min_flow=b.min_flow, lpips=lpips, lpips_note=note,
                              examples=cfg.examples, progress=cfg.progress, shard=shard)
    row = dict(flow=r.flow, mse=r.mse, psnr=r.psnr, lpips=r.lpips, mse_no_edit=r.mse_no_edit,
               psnr_no_edit=r.psnr_no_edit, lpips_no_edit=r.lpips_no_edit, seconds_per_edit=r.seconds_per_edit,
               steps_mean=r.steps_mean, change_outside=r.change_outside, lpips_outside=r.lpips_outside,
               target_change_outside=r.target_change_outside, locality_margin_px=r.locality_margin_px)
    table = markdown_table(["flow", "MSE", "PSNR (dB)", "LPIPS", "MSE no edit", "PSNR no edit", "LPIPS no edit",
                            "change outside", "LPIPS outside", "image 2 outside", "time/edit (s)", "steps"],
                           [[row[k] for k in ("flow", "mse", "psnr", "lpips", "mse_no_edit", "psnr_no_edit",
                                              "lpips_no_edit", "change_outside", "lpips_outside",
                                              "target_change_outside", "seconds_per_edit", "steps_mean")]])
    return dict(rows=[row], pairs=r.pairs, table=table, examples=_save_examples(r.examples, out, logger, "paired"),
                lpips_note=note)


def _tracking(cfg, b: BenchmarkConfig, G, drag_config, out: Path, shard: Shard) -> dict:
    from eval.detectors import load_landmark_detector
    from eval.trackers import TRACKERS, make_tracker
    from eval.tracking import THRESHOLDS_PX, tracking_accuracy

    trackers = [make_tracker(n, drag_config=drag_config, download=cfg.download_weights, device=_device_of(G))
                for n in (TRACKERS if b.trackers is None else b.trackers)]
    r = tracking_accuracy(G, load_landmark_detector(cfg.detector, _device_of(G)), drag_config, trackers,
                          num_points=b.num_points[0], num_pairs=cfg.n_pairs, seed=cfg.seed,
                          truncation_psi=b.truncation_psi, progress=cfg.progress, shard=shard)
    rows = [dict(tracker=t.tracker, available=t.available, reason=t.reason, mean_error=t.mean_error,
                 **{f"within_{k}": v for k, v in t.within.items()}, estimates=t.num_estimates, seconds=t.seconds)
            for t in r.trackers]
    cols = [f"within_{t:g}px" for t in THRESHOLDS_PX]
    table = markdown_table(["tracker", "mean error (px)"] + [c.replace("within_", "<= ") for c in cols] +
                           ["estimates", "time (s)"],
                           [[row["tracker"], row["mean_error"] if row["available"] else "unavailable"] +
                            [row.get(c) for c in cols] + [row["estimates"], row["seconds"]] for row in rows])
    return dict(rows=rows, pairs=[], table=table, examples=[], steps_mean=r.steps_mean, num_points=r.num_points)


def unavailable_parts(results: dict) -> list[str]:
    """What a run could not measure and why (a tracker, FID or LPIPS without its weights), one line each."""
    notes = []
    if not results.get("available", True):
        notes.append(f"tracker {results['tracker']} is unavailable: {results['reason']}")
    notes += [f"tracker {r['tracker']} is unavailable: {r['reason']}" for r in results.get("rows", [])
              if r.get("available") is False]
    for key, what in (("fid_note", "FID"), ("lpips_note", "LPIPS")):
        if results.get(key):
            notes.append(f"{what} left out: {results[key]}")
    return notes


def run_evaluation(cfg, out_dir, *, logger) -> dict:
    """Run the configured benchmark; write results.json (last) and results.md into `out_dir`. `measured` says
    whether anything was (False when the tracker, or every tracker of `tracking`, is unavailable) and `notes`
    what was not, and why."""
    from eval.trackers import make_tracker

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    b, tracker_cfg = from_config(BenchmarkConfig, cfg.benchmark), from_config(TrackerConfig, cfg.tracker)
    name = b.name
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark.name must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    if cfg.n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {cfg.n_pairs}")
    shard = parse_shard(cfg.shard)
    if shard.count > cfg.n_pairs:
        raise ValueError(f"shard={shard} splits {cfg.n_pairs} pairs into {shard.count} shards: at most n_pairs shards")
    if under_torchrun():  # the ranks share one run folder: each writes into its own
        out = out / f"shard-{shard.index}-of-{shard.count}"
        out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    G = load_generator(cfg.generator, device=shard_device(cfg.device))
    use_threads(cfg.threads, work_macs=synthesis_macs(G))  # the drags, one at a time, set the size of the work
    drag_config = drag_config_from(cfg, G)
    settings = settings_record(drag_config, G)  # every drag setting and where it came from
    write_settings(settings, out)
    logger.log_config({"drag_settings": settings})
    results: dict[str, Any] = dict(benchmark=name, generator=cfg.generator, n_pairs=cfg.n_pairs, seed=cfg.seed,
                                   method=drag_config.method, drag_config=dataclasses.asdict(drag_config))
    if not shard.whole:
        results["shard"] = dict(index=shard.index, count=shard.count,
                                pairs=len([i for i in range(cfg.n_pairs) if shard.owns(i)]))
    if name == "tracking":
        results.update(tracker="all", available=True, **_tracking(cfg, b, G, drag_config, out, shard))
    else:
        tracker_name = tracker_cfg.name
        tracker = make_tracker(tracker_name, drag_config=drag_config, weights=tracker_cfg.weights,
                               download=cfg.download_weights, device=_device_of(G))
        reason = tracker.availability()
        results["tracker"] = tracker_name
        if reason is not None:
            results.update(available=False, reason=reason, rows=[], pairs=[],
                           table=f"tracker {tracker_name} unavailable: nothing measured\n")
        else:
            # DragGAN's own trackers run as the session's built-in tracking (identical, and faster).
            in_loop = None if tracker_name == f"draggan_{drag_config.tracking_distance}" else tracker
            if in_loop is not None and not get_method(drag_config.method).accepts_tracker:
                raise ValueError(f"tracker={tracker_name} replaces DragGAN's point tracking inside the loop, but drag "
                                 f"method {drag_config.method!r} localises its handles itself: add drag_method=draggan")
            run = _landmarks if name == "landmarks" else _paired
            results.update(available=True, **run(cfg, b, G, drag_config, in_loop, out, logger, shard))
    results["wall_seconds"] = time.perf_counter() - t0
    results["notes"] = unavailable_parts(results)
    results["measured"] = bool(results["rows"]) and (name != "tracking" or any(r["available"] for r in results["rows"]))
    results = json_safe(results)
    header = (f"# {name}: method {drag_config.method}, tracker {results['tracker']}, {cfg.generator}, {cfg.n_pairs} pairs, "
              f"seed {cfg.seed}\n\n")
    if not shard.whole:
        header += (f"Shard {shard} (its {results['shard']['pairs']} pairs only): scripts/report.py on the folder of "
                   "every shard merges them into the table of one run.\n\n")
    notes = "".join(f"\n- {note}" for note in results["notes"])
    (out / "results.md").write_text(header + results["table"] + (f"\nNot measured:{notes}\n" if notes else ""))
    for row in results["rows"]:
        logger.log({f"{name}/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and v is not None},
                   row.get("num_points", 0))
    if results["pairs"]:
        columns = sorted({k for p in results["pairs"] for k in p})
        logger.log_table(f"{name}/pairs", columns, [[p.get(c) for c in columns] for p in results["pairs"]])
    text = json.dumps(results, indent=2)
    atomic_write(out / "results.json", lambda tmp: tmp.write_text(text))
    return results
