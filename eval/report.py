"""Tables like the paper's from a folder of evaluation runs (a Hydra sweep folder, say).

Every `results.json` under the folder is one run (the shards of a sharded run, `shard=K/N`, are merged into
one: eval/shards.py); runs of the same benchmark make one table whose
rows are the runs (labelled by their tracker and the other overrides of the sweep) and whose
columns are the paper's: MD for 1, 5 and all points (with the no-edit MD) and the time per edit for
landmark manipulation; MSE, PSNR and LPIPS for paired reconstruction; error and shares within
1, 2 and 4 px for tracking. Beside MD and MSE, the edit's locality (`eval.locality`: the mean pixel change
away from the handle -> target paths; runs from before it was measured show n/a).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eval.tables import markdown_table

IGNORED_OVERRIDES = ("tracker", "drag_method", "benchmark.num_points", "logger", "progress", "threads", "out_dir",
                     "examples", "hydra", "shard", "device")


def find_runs(root: str | Path) -> list[tuple[Path, dict]]:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root} does not exist")
    runs = [(p.parent, json.loads(p.read_text())) for p in sorted(root.rglob("results.json"))]
    if not runs:
        raise FileNotFoundError(f"no results.json under {root}: is it a folder of scripts/evaluate.py runs?")
    return runs


def run_overrides(folder: Path) -> dict[str, str]:
    """The run's command-line overrides (Hydra's record), key -> 'key=value', less the bookkeeping ones (a torchrun
    shard's folder is inside its run's)."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file() and folder.name.startswith("shard-"):
        path = folder.parent / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    import yaml

    out = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key = item.split("=", 1)[0].lstrip("+~")
        if not key.startswith(IGNORED_OVERRIDES):
            out[key] = item
    return out


def merge_shard_runs(runs: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """The runs with the shards of each sharded run (`shard=K/N`, eval/shards.py) merged into one run: shards of
    one run have the same results apart from their pairs and the same overrides apart from the shard."""
    from eval.shards import FID_FEATURES, SHARD_ONLY, merge_shards

    whole, groups = [], {}
    for folder, res in runs:
        if "shard" not in res:
            whole.append((folder, res))
            continue
        same = {k: v for k, v in res.items() if k not in SHARD_ONLY + ("fid_note", "lpips_note", "reason")}
        key = json.dumps([same, sorted(run_overrides(folder).items())], sort_keys=True, default=str)
        groups.setdefault(key, []).append((folder, res))
    for shards in groups.values():
        features = {}
        for folder, res in shards:
            if (folder / FID_FEATURES).is_file():
                import numpy as np

                with np.load(folder / FID_FEATURES) as f:
                    features[res["shard"]["index"]] = dict(f)
        try:
            merged = merge_shards([res for _, res in shards], features)
        except ValueError as e:
            raise ValueError(f"{', '.join(str(f) for f, _ in shards)}: {e}") from None
        whole.append((shards[0][0], merged))
    return sorted(whole, key=lambda run: str(run[0]))


def run_labels(runs: list[tuple[Path, dict]]) -> list[str]:
    """Each run's drag method (DragGAN's: its in-loop tracker), plus the overrides that differ between the runs,
    e.g. 'dis (drag.r1=2)' or 'freedrag'."""
    overrides = [run_overrides(folder) for folder, _ in runs]
    keys = sorted({k for o in overrides for k in o})
    varying = [k for k in keys if len({o.get(k) for o in overrides}) > 1]
    labels = []
    for (_, res), o in zip(runs, overrides):
        extra = [o[k] for k in varying if k in o]
        method = res.get("method", "draggan")
        base = res.get("tracker", "?") if method == "draggan" else method  # other methods localise on their own
        labels.append(base + (f" ({', '.join(extra)})" if extra else ""))
    return labels


def _landmark_table(runs) -> tuple[str, list[dict]]:
    sets = sorted({r["num_points"] for _, res in runs for r in res.get("rows", [])})
    cols = ["method"] + [f"MD {n} pt" for n in sets] + [f"no edit {n} pt" for n in sets] + \
           [f"change outside {n} pt" for n in sets] + [f"time {n} pt (s)" for n in sets] + ["FID (1 pt)"]
    rows, data = [], []
    for label, res in runs:
        by = {r["num_points"]: r for r in res.get("rows", [])}
        if not res.get("available", True):
            rows.append([label] + ["unavailable"] * (len(cols) - 1))
            continue
        first = by.get(sets[0], {}) if sets else {}
        rows.append([label] + [by.get(n, {}).get("md_edit") for n in sets] + [by.get(n, {}).get("md_no_edit") for n in sets]
                    + [by.get(n, {}).get("change_outside") for n in sets]
                    + [by.get(n, {}).get("seconds_per_edit") for n in sets] + [first.get("fid")])
        data.append(dict(label=label, md={n: by[n]["md_edit"] for n in sets if n in by}))
    return markdown_table(cols, rows), data


def _paired_table(runs) -> tuple[str, list[dict]]:
    cols = ["method", "MSE", "PSNR (dB)", "LPIPS", "MSE no edit", "LPIPS no edit", "change outside", "LPIPS outside",
            "time/edit (s)"]
    rows, data = [], []
    for label, res in runs:
        if not res.get("available", True) or not res.get("rows"):
            rows.append([label] + ["unavailable"] * (len(cols) - 1))
            continue
        r = res["rows"][0]
        rows.append([label, r["mse"], r["psnr"], r.get("lpips"), r["mse_no_edit"], r.get("lpips_no_edit"),
                     r.get("change_outside"), r.get("lpips_outside"), r["seconds_per_edit"]])
        data.append(dict(label=label, mse=r["mse"]))
    return markdown_table(cols, rows), data


def _tracking_table(runs) -> tuple[str, list[dict]]:
    cols = ["tracker", "mean error (px)", "<= 1px", "<= 2px", "<= 4px", "estimates"]
    rows, data = [], []
    for label, res in runs:
        for r in res.get("rows", []):
            name = r["tracker"] if len(runs) == 1 else f"{r['tracker']} [{label}]"
            if not r["available"]:
                rows.append([name, "unavailable", None, None, None, 0])
                continue
            rows.append([name, r["mean_error"], r.get("within_1px"), r.get("within_2px"), r.get("within_4px"),
                         r["estimates"]])
            data.append(dict(label=name, error=r["mean_error"]))
    return markdown_table(cols, rows), data


def _plot(benchmark: str, data: list[dict], path: Path) -> Path | None:
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
    labels = [d["label"] for d in data]
    if benchmark == "landmarks":
        sets = sorted({n for d in data for n in d["md"]})
        width = 0.8 / max(len(sets), 1)
        for j, n in enumerate(sets):
            ax.bar([i + j * width for i in range(len(data))], [d["md"].get(n, float("nan")) for d in data], width,
                   label=f"{n} point{'s' if n > 1 else ''}")
        ax.set_ylabel("mean distance after the edit (px)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        ax.set_xticks([i + width * (len(sets) - 1) / 2 for i in range(len(data))], labels, rotation=20, ha="right")
    else:
        key, ylabel = ("mse", "MSE to image 2") if benchmark == "paired" else ("error", "mean tracking error (px)")
        ax.bar(range(len(data)), [d[key] for d in data])
        ax.set_ylabel(ylabel)
        ax.set_xticks(range(len(data)), labels, rotation=20, ha="right")
    ax.set_title({"landmarks": "Landmark manipulation (lower is better)", "paired": "Paired reconstruction",
                  "tracking": "Tracking accuracy during drags"}[benchmark])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def make_report(root: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write `report.md` and one `report_<benchmark>.png` per benchmark into `out` (default: `root`)."""
    root = Path(root)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    grouped: dict[str, list] = {}
    for folder, res in merge_shard_runs(find_runs(root)):
        grouped.setdefault(res["benchmark"], []).append((folder, res))
    by_benchmark = {bench: list(zip(run_labels(runs), [res for _, res in runs])) for bench, runs in grouped.items()}
    parts, plots = [f"# Evaluation report: {root}\n"], {}
    makers = dict(landmarks=_landmark_table, paired=_paired_table, tracking=_tracking_table)
    titles = dict(landmarks="Landmark manipulation (Table 1): mean distance in pixels, lower is better",
                  paired="Paired image reconstruction (Table 2)", tracking="Tracking accuracy during drags")
    for bench in ("landmarks", "paired", "tracking"):
        if bench not in by_benchmark:
            continue
        runs = by_benchmark[bench]
        first = runs[0][1]
        table, data = makers[bench](runs)
        plot = _plot(bench, data, out / f"report_{bench}.png")
        parts.append(f"## {titles[bench]}\n\n{first['generator']}, {first['n_pairs']} pairs, seed {first['seed']}\n\n"
                     + table + (f"\n![{bench}]({plot.name})\n" if plot else ""))
        if plot:
            plots[bench] = str(plot)
    text = "\n".join(parts)
    (out / "report.md").write_text(text)
    return dict(markdown=text, plots=plots, runs=sum(len(v) for v in by_benchmark.values()))
