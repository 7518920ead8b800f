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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from draggan.configs import DragSettings
from draggan.edit import drag_config_from
from draggan.loading import load_generator
from draggan.registry import DEFAULT_MODEL
from draggan.session_io import json_safe
from eval.weights import WeightsUnavailable

BENCHMARKS = ("landmarks", "paired", "tracking")


@dataclass
class TrackerConfig:
    name: str = "draggan_l1"  # see eval.trackers.TRACKERS
    weights: str | None = None  # RAFT: path of torchvision's weights file (default: torch hub's cache)


@dataclass
class BenchmarkConfig:
    name: str = "landmarks"  # landmarks, paired or tracking
    truncation_psi: float = 0.7
    num_points: list[int] = field(default_factory=lambda: [1, 5, 17])  # landmarks: point sets; tracking: the first
    fid: bool = True  # landmarks: FID of edits against the initial images (needs the FID Inception weights)
    flow: str = "dis"  # paired: dis, farneback, raft_small, raft_large
    flow_weights: str | None = None  # paired with RAFT: path of its weights
    paired_points: int = 32  # paired: flow vectors per pair
    perturb_rows: int = 6  # paired: W+ rows of w1 perturbed to make w2
    perturb_strength: float = 0.7  # paired: how far towards another latent
    min_flow: float = 2.0  # paired: smallest flow sampled, pixels
    lpips_net: str = "alex"  # paired: LPIPS backbone (needs torchvision's ImageNet weights)
    trackers: list[str] = field(default_factory=lambda: ["draggan_l1", "draggan_l2", "lucas_kanade", "dis",
                                                         "farneback", "raft_small", "raft_large", "cotracker", "none"])


@dataclass
class EvaluateConfig:
    generator: str = DEFAULT_MODEL  # registered name, path or URL of a checkpoint
    drag: DragSettings = field(default_factory=DragSettings)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    logger: Any = None  # eval.logging.LoggerConfig (the logger group)
    n_pairs: int = 10  # pairs of images per point set
    seed: int = 0  # the same seed gives the same table
    detector: str = "toyfaces"  # toyfaces, face_alignment (FFHQ), a toy detector .safetensors, or module:factory
    device: str = "auto"  # auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N, mps: everything runs there
    threads: int | None = None  # torch CPU threads (None = torch's default)
    download_weights: bool = False  # allow downloading RAFT / Inception / LPIPS weights
    examples: int = 2  # pairs whose drags are saved (PNG + GIF) and logged
    out_dir: str | None = None  # None = Hydra's run folder
    progress: bool = True


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


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


def _landmarks(cfg, G, drag_config, tracker, out: Path, logger) -> dict:
    from eval.detectors import load_landmark_detector
    from eval.landmarks import landmark_manipulation, point_indices

    detector = load_landmark_detector(cfg.detector, _device_of(G))
    fid_net, fid_note = None, None
    if cfg.benchmark.fid:
        from eval.fid import load_fid_inception

        try:
            fid_net = load_fid_inception(download=cfg.download_weights)
        except WeightsUnavailable as e:
            fid_note = str(e)
            print(f"evaluate: FID left out: {e}")
    rows, pairs, examples = [], [], []
    for n in cfg.benchmark.num_points:
        point_indices(detector, n)  # a clear error for a set the detector lacks
        r = landmark_manipulation(G, detector, drag_config, num_points=n, num_pairs=cfg.n_pairs, seed=cfg.seed,
                                  truncation_psi=cfg.benchmark.truncation_psi, tracker=tracker,
                                  keep_images=fid_net is not None, examples=cfg.examples, progress=cfg.progress)
        fid_value = None
        if fid_net is not None:
            from eval.fid import fid

            fid_value = fid(fid_net, r.images_after, r.images_before)
        rows.append(dict(num_points=n, md_edit=r.md_edit, md_no_edit=r.md_no_edit, ratio=r.ratio,
                         seconds_per_edit=r.seconds_per_edit, steps_mean=r.steps_mean, reached=r.reached,
                         fid=fid_value))
        pairs += [dict(num_points=n, **p) for p in r.pairs]
        examples += _save_examples(r.examples, out, logger, f"{n}pt")
    table = markdown_table(["points", "MD edit (px)", "MD no edit (px)", "ratio", "time/edit (s)", "steps",
                            "reached", "FID"],
                           [[r["num_points"], r["md_edit"], r["md_no_edit"], r["ratio"], r["seconds_per_edit"],
                             r["steps_mean"], r["reached"], r["fid"]] for r in rows])
    return dict(rows=rows, pairs=pairs, table=table, examples=examples, fid_note=fid_note)


def _paired(cfg, G, drag_config, tracker, out: Path, logger) -> dict:
    from eval.flow import make_flow
    from eval.paired import paired_reconstruction

    b = cfg.benchmark
    flow = make_flow(b.flow, weights=b.flow_weights, download=cfg.download_weights, device=_device_of(G))
    reason = flow.availability()
    if reason is not None:
        raise WeightsUnavailable(f"flow estimator {b.flow} is unavailable: {reason}")
    lpips, note = None, None
    try:
        from inversion.lpips_loss import LPIPSWeightsError, load_lpips

        lpips = load_lpips(b.lpips_net, download=cfg.download_weights, device=_device_of(G))
    except LPIPSWeightsError as e:
        note = str(e)
        print(f"evaluate: LPIPS left out: {e}")
    r = paired_reconstruction(G, drag_config, flow, tracker=tracker, num_pairs=cfg.n_pairs, num_points=b.paired_points,
                              seed=cfg.seed, truncation_psi=b.truncation_psi, perturb_rows=b.perturb_rows,
                              perturb_strength=b.perturb_strength, min_flow=b.min_flow, lpips=lpips, lpips_note=note,
                              examples=cfg.examples, progress=cfg.progress)
    row = dict(flow=r.flow, mse=r.mse, psnr=r.psnr, lpips=r.lpips, mse_no_edit=r.mse_no_edit,
               psnr_no_edit=r.psnr_no_edit, lpips_no_edit=r.lpips_no_edit, seconds_per_edit=r.seconds_per_edit,
               steps_mean=r.steps_mean)
    table = markdown_table(["flow", "MSE", "PSNR (dB)", "LPIPS", "MSE no edit", "PSNR no edit", "LPIPS no edit",
                            "time/edit (s)", "steps"],
                           [[row[k] for k in ("flow", "mse", "psnr", "lpips", "mse_no_edit", "psnr_no_edit",
                                              "lpips_no_edit", "seconds_per_edit", "steps_mean")]])
    return dict(rows=[row], pairs=r.pairs, table=table, examples=_save_examples(r.examples, out, logger, "paired"),
                lpips_note=note)


def _tracking(cfg, G, drag_config, out: Path) -> dict:
    from eval.detectors import load_landmark_detector
    from eval.trackers import make_tracker
    from eval.tracking import THRESHOLDS_PX, tracking_accuracy

    trackers = [make_tracker(n, drag_config=drag_config, download=cfg.download_weights, device=_device_of(G))
                for n in cfg.benchmark.trackers]
    r = tracking_accuracy(G, load_landmark_detector(cfg.detector, _device_of(G)), drag_config, trackers,
                          num_points=cfg.benchmark.num_points[0], num_pairs=cfg.n_pairs, seed=cfg.seed,
                          truncation_psi=cfg.benchmark.truncation_psi, progress=cfg.progress)
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
    name = cfg.benchmark.name
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark.name must be one of {', '.join(BENCHMARKS)}, got {name!r}")
    if cfg.n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {cfg.n_pairs}")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    t0 = time.perf_counter()
    G = load_generator(cfg.generator, device=cfg.device)
    drag_config = drag_config_from(cfg)
    results: dict[str, Any] = dict(benchmark=name, generator=cfg.generator, n_pairs=cfg.n_pairs, seed=cfg.seed,
                                   method=drag_config.method, drag_config=dataclasses.asdict(drag_config))
    if name == "tracking":
        results.update(tracker="all", available=True, **_tracking(cfg, G, drag_config, out))
    else:
        tracker_name = cfg.tracker.name
        tracker = make_tracker(tracker_name, drag_config=drag_config, weights=cfg.tracker.weights,
                               download=cfg.download_weights, device=_device_of(G))
        reason = tracker.availability()
        results["tracker"] = tracker_name
        if reason is not None:
            results.update(available=False, reason=reason, rows=[], pairs=[],
                           table=f"tracker {tracker_name} unavailable: nothing measured\n")
        else:
            # DragGAN's own trackers run as the session's built-in tracking (identical, and faster).
            in_loop = None if tracker_name == f"draggan_{drag_config.tracking_distance}" else tracker
            run = _landmarks if name == "landmarks" else _paired
            results.update(available=True, **run(cfg, G, drag_config, in_loop, out, logger))
    results["wall_seconds"] = time.perf_counter() - t0
    results["notes"] = unavailable_parts(results)
    results["measured"] = bool(results["rows"]) and (name != "tracking" or any(r["available"] for r in results["rows"]))
    results = json_safe(results)
    header = (f"# {name}: method {drag_config.method}, tracker {results['tracker']}, {cfg.generator}, {cfg.n_pairs} pairs, "
              f"seed {cfg.seed}\n\n")
    notes = "".join(f"\n- {note}" for note in results["notes"])
    (out / "results.md").write_text(header + results["table"] + (f"\nNot measured:{notes}\n" if notes else ""))
    for row in results["rows"]:
        logger.log({f"{name}/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and v is not None},
                   row.get("num_points", 0))
    if results["pairs"]:
        columns = sorted({k for p in results["pairs"] for k in p})
        logger.log_table(f"{name}/pairs", columns, [[p.get(c) for c in columns] for p in results["pairs"]])
    tmp = out / "results.json.part"
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out / "results.json")
    return results
