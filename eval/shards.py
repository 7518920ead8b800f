"""A benchmark split into shards that run in parallel, and the shards merged into the results of one run.

`shard=K/N` makes a run of `scripts/evaluate.py` drag only the pairs whose index i (in the order one unsharded
run drags them) has i % N == K: every shard chooses the same pairs as one run would (the choice is cheap:
seeds, detection, flow) and drags its share (the expensive part). The shards of a run are N jobs of a Hydra
multirun (`-m shard=0/4,1/4,2/4,3/4`, with the local or the SLURM launcher) or the N processes of
`torchrun --nproc-per-node=N scripts/evaluate.py ...` (each takes shard RANK/WORLD_SIZE and the GPU
cuda:LOCAL_RANK, and writes into `<run folder>/shard-K-of-N/`). `scripts/report.py` merges them
(`merge_shards`): each table row is recomputed from the per-pair records, in pair order, so that the merged
table is the table of one run (times aside: they are measured, not computed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.locality import mean_change


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: the pairs i with i % count == index."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard must be K/N with N >= 1 and 0 <= K < N, got {self.index}/{self.count}")

    def owns(self, pair: int) -> bool:
        """Whether this shard drags pair number `pair` (0-based, in one run's order)."""
        return pair % self.count == self.index

    @property
    def whole(self) -> bool:
        return self.count == 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None, environ: dict[str, str] | None = None) -> Shard:
    """`K/N` as a Shard; None: torchrun's RANK/WORLD_SIZE when they are set, else the whole benchmark."""
    env = os.environ if environ is None else environ
    if text is None or str(text).strip() == "":
        if "WORLD_SIZE" in env and "RANK" in env:
            return Shard(int(env["RANK"]), int(env["WORLD_SIZE"]))
        return Shard()
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must be K/N (e.g. shard=0/4: the first of 4 shards), got {text!r}") from None
    return Shard(index, count)


def under_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is one of several that torchrun started (it sets LOCAL_RANK and WORLD_SIZE)."""
    env = os.environ if environ is None else environ
    return "LOCAL_RANK" in env and int(env.get("WORLD_SIZE", "1")) > 1


def shard_device(device: str, environ: dict[str, str] | None = None) -> str:
    """The device of this process: under torchrun, `auto` and `cuda` mean this process's GPU, cuda:LOCAL_RANK
    (when CUDA is there); anything else is the device as configured."""
    env = os.environ if environ is None else environ
    if under_torchrun(env) and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(env['LOCAL_RANK'])}"
    return device


FID_FEATURES = "fid_features.npz"  # a landmark shard's Inception features of its first images and edits (FID)

# Row fields that are the mean of a differently named per-pair field; every other numeric row field is the mean of
# the per-pair field of its own name (a field that has none cannot be merged, and says so).
PAIR_FIELD_OF = {"steps_mean": "steps", "seconds_per_edit": "seconds"}
DERIVED = {"ratio": lambda row: row["md_edit"] / max(row["md_no_edit"], 1e-12)}  # as eval.landmarks computes it
ROW_KEYS = {"landmarks": "num_points", "paired": "flow"}  # what names a row (a point set, a flow estimator)
FINITE_MEANS = ("change_outside", "target_change_outside")  # means over the pairs that have one (eval.locality)
CONSTANTS = ("locality_margin_px",)  # the same in every shard of a run (a setting, not a per-pair figure)
SHARD_ONLY = ("shard", "rows", "pairs", "table", "examples", "wall_seconds", "notes", "measured", "steps_mean")


def merge_shards(shards: list[dict[str, Any]], fid_features: dict[int, dict[str, np.ndarray]] | None = None
                 ) -> dict[str, Any]:
    """The results of one run from the `results.json` of its shards (every shard of one N, once each).

    Landmarks and paired: each row is recomputed from the per-pair records, ordered by pair number, as one run
    computes it (means over pairs; FID from the shards' Inception features when `fid_features` holds them:
    shard index -> {'before', 'after'}). Tracking: each tracker's figures are weighted by its estimates.
    """
    if not shards:
        raise ValueError("no shards to merge")
    counts = {res["shard"]["count"] for res in shards}
    indices = sorted(res["shard"]["index"] for res in shards)
    if len(counts) != 1 or indices != list(range(next(iter(counts)))):
        have = ", ".join(f"{res['shard']['index']}/{res['shard']['count']}" for res in shards)
        raise ValueError(f"shards {have} do not make a whole run: every shard K/N for K = 0..N-1, once each")
    shards = sorted(shards, key=lambda res: res["shard"]["index"])
    first = shards[0]
    merged = {k: v for k, v in first.items() if k not in SHARD_ONLY}
    for res in shards[1:]:
        differ = [k for k in merged if k not in ("fid_note", "lpips_note", "reason") and res.get(k) != merged[k]]
        if differ:
            raise ValueError(f"shards of different runs cannot be merged: they differ in {', '.join(differ)}")
    merged.update(shards=len(shards), wall_seconds=sum(res.get("wall_seconds", 0.0) for res in shards),
                  examples=[p for res in shards for p in res.get("examples", [])])
    if not all(res.get("available", True) for res in shards):
        merged.update(available=False, rows=[], pairs=[])
        return merged
    bench = first["benchmark"]
    if bench == "tracking":
        merged.update(rows=_merge_tracking(shards), pairs=[],
                      steps_mean=_weighted([(res["steps_mean"], _pairs_in(res)) for res in shards]))
        return merged
    pairs = sorted((p for res in shards for p in res["pairs"]), key=lambda p: (p.get(ROW_KEYS[bench], 0), p["pair"]))
    rows = []
    for shard_row in first["rows"]:
        key = ROW_KEYS[bench]
        mine = [p for p in pairs if bench == "paired" or p[key] == shard_row[key]]
        row = {}
        for name, value in shard_row.items():
            source = PAIR_FIELD_OF.get(name, name)
            if name in DERIVED or name == "fid":
                continue
            if name in CONSTANTS:
                row[name] = value  # set by the run's generator and settings, which the shards were checked to share
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and name != key or value is None:
                if value is None and all(p.get(source) is None for p in mine):
                    row[name] = None  # not measured (LPIPS without weights)
                    continue
                if source not in mine[0]:
                    raise ValueError(f"cannot merge the shards' {name!r}: their pairs do not record {source!r}")
                values = [p[source] for p in mine]
                row[name] = mean_change(values) if name in FINITE_MEANS else float(np.mean(values))
            else:
                row[name] = value
        for name, rule in DERIVED.items():
            if name in shard_row:
                row[name] = rule(row)
        if "fid" in shard_row:
            row["fid"] = _merged_fid(fid_features, shard_row.get(key), len(shards))
        rows.append({name: row[name] for name in shard_row})  # the columns in one run's order
    merged.update(rows=rows, pairs=pairs)
    return merged


def _pairs_in(res: dict) -> int:
    return int(res["shard"].get("pairs", 1))


def _weighted(values: list[tuple[float, float]]) -> float:
    total = sum(w for _, w in values)
    return float(sum(v * w for v, w in values) / total) if total else float("nan")


def _merge_tracking(shards: list[dict]) -> list[dict]:
    rows = []
    for k, first in enumerate(shards[0]["rows"]):
        parts = [res["rows"][k] for res in shards]
        if any(p["tracker"] != first["tracker"] for p in parts):
            raise ValueError("the shards' tracking rows name different trackers")
        if not first["available"]:
            rows.append(first)
            continue
        row = dict(first)
        n = sum(p["estimates"] for p in parts)
        for name in first:
            if name == "mean_error" or name.startswith("within_"):
                row[name] = _weighted([(p[name], p["estimates"]) for p in parts if p["estimates"]])
        row.update(estimates=n, seconds=sum(p["seconds"] for p in parts))
        rows.append(row)
    return rows


def _merged_fid(fid_features, num_points, num_shards: int) -> float | None:
    """FID of all shards' edits against their first images, from the Inception features each shard saved."""
    if not fid_features or len(fid_features) != num_shards:
        return None
    from eval.fid import frechet_distance

    key = str(num_points)
    parts = [fid_features[i] for i in sorted(fid_features)]
    order = np.argsort(np.concatenate([f[f"{key}_pairs"] for f in parts]), kind="stable")
    after = np.concatenate([f[f"{key}_after"] for f in parts])[order]
    before = np.concatenate([f[f"{key}_before"] for f in parts])[order]
    return frechet_distance(after, before)
