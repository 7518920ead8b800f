"""Each departure of the library's FreeDrag from its authors' code, measured: `python scripts/freedrag_deviations.py
[--pairs 20] [--seed 0] [--faces 10] [--mouth-seeds 0 1000] [--mask-faces 10] [--rows KEY ...] [--out FILE]`.

One row per setting (eval/freedrag_deviations.py): the recommended FreeDrag of `toy-faces-64`, each rule where it
departs from the authors' code set to theirs on its own, and the authors' `official` preset. Each row: Table 1 on
`toy-faces-64` (`--points`, default 1 and 5, `--pairs` pairs from face seed `--seed` on: MD, steps, change outside
the paths), the mouth drag on the unseen `toy-faces-64-seed1` (`--faces` faces per seed), and, for the rows where a
mask matters, the masked drag (the mask check: left eye 3 px up in a disc of 6 px, `--mask-faces` faces). The JSON
is written after every row (rerun with the same --out and sample to finish an interrupted run or add point counts:
what is already there is kept; a file of another sample is refused); by default into
outputs/freedrag_deviations/<time>/, e.g. --out docs/results/freedrag-deviations.json.
"""

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

MASK_ROWS = ("recommended", "mask_term", "official")  # rows whose masked drag is measured unless --mask-rows says


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[1]).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _summary(row: dict) -> str:
    parts = [f"{n} pt md {v['md']:.3f} steps {v['steps']:.1f} out {v['change_outside']:.4f}"
             for n, v in row.get("table1", {}).items()]
    if "mouth" in row:
        parts.append("mouth " + ", ".join(f"{v['left']:.3f}" for v in row["mouth"].values()))
    if "mask" in row:
        m = row["mask"]
        parts.append(f"masked left {m['dist_masked']:.2f} px, out {m['change_outside_masked']:.4f}")
    return "; ".join(parts) + f" ({row['seconds']:.0f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="toy-faces-64", help="Table 1 and the masked drag run on it")
    parser.add_argument("--unseen", default="toy-faces-64-seed1", help="the mouth drag runs on it")
    parser.add_argument("--pairs", type=int, default=20, help="Table 1 pairs")
    parser.add_argument("--seed", type=int, default=0, help="Table 1's faces are seeds seed, seed+1, ...")
    parser.add_argument("--points", type=int, nargs="+", default=[1, 5], help="Table 1 point counts")
    parser.add_argument("--faces", type=int, default=10, help="faces of the mouth drag, per seed")
    parser.add_argument("--mouth-seeds", type=int, nargs="+", default=[0, 1000])
    parser.add_argument("--mask-faces", type=int, default=10, help="faces of the masked drag (0: none)")
    parser.add_argument("--mask-rows", nargs="+", default=list(MASK_ROWS))
    parser.add_argument("--rows", nargs="+", default=None, help="only these rows (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    from draggan.apps.toyfaces.detector import load_detector
    from draggan.loading import load_generator
    from eval.freedrag_deviations import (
        DEVIATIONS,
        config_summary,
        mask_row,
        mouth_row,
        row_configs,
        table1_row,
    )

    torch.set_num_threads(args.threads)
    G = load_generator(args.generator, device="cpu")
    unseen = load_generator(args.unseen, device="cpu")
    detector = load_detector()
    out = Path(args.out) if args.out else (Path("outputs/freedrag_deviations") / time.strftime("%Y-%m-%d_%H-%M-%S")
                                          / "freedrag-deviations.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {}
    for name in ("seed", "pairs", "faces", "mouth_seeds"):  # rows kept from the file must be on the same sample
        if "rows" in results and name in results and results[name] != getattr(args, name):
            sys.exit(f"freedrag_deviations: {out} was measured with --{name.replace('_', '-')} {results[name]}, "
                     f"not {getattr(args, name)}; give another --out")
    done = {r["key"]: r for r in results.get("rows", [])}
    about = {d.key: d for d in DEVIATIONS}
    unseen_rows = {key: cfg for key, cfg, _ in row_configs(unseen)}
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/freedrag_deviations.py", *sys.argv[1:]])
    earlier = results.get("commands", []) + ([results.pop("command")] if "command" in results else [])
    results.update(
        what=("The recommended FreeDrag against its authors' rules, one rule at a time, then the authors' official "
              f"preset: Table 1 on {args.generator} ({args.pairs} pairs from face seed {args.seed} on; md: mean "
              "distance after the edit, px; change_outside: mean pixel change outside 1/8 of the image around the "
              "paths, [0, 1] images), the "
              f"mouth drag on {args.unseen} (share of the 6 px left, {args.faces} faces per seed), the masked drag "
              f"on {args.generator} (left eye 3 px up, disc of 6 px, {args.mask_faces} faces)"),
        torch=torch.__version__.split("+")[0],
        machine=f"the 2-core development machine (CPU, {platform.machine()}), {args.threads} thread beside other jobs",
        date=time.strftime("%Y-%m-%d"), commit=_commit(),
        commands=[*[c for c in earlier if c != command], command],
        generator=args.generator, unseen=args.unseen, pairs=args.pairs, seed=args.seed, faces=args.faces,
        mouth_seeds=args.mouth_seeds, mask_faces=args.mask_faces)
    rows, recommended_faces = [], done.get("recommended", {}).get("mask_faces")
    for key, cfg, masked_only in row_configs(G):
        if args.rows is not None and key not in args.rows:
            if key in done:
                rows.append(done[key])
            continue
        row = done.get(key) or dict(key=key)
        d = about.get(key)
        row.update(option=d.option if d else None, library=d.library if d else None,
                   authors=d.authors if d else None, config=config_summary(cfg, G))
        t0 = time.perf_counter()
        missing = [n for n in args.points if str(n) not in row.get("table1", {})]
        if not masked_only and missing:
            print(f"[{key}] Table 1, {', '.join(map(str, missing))} point(s)", file=sys.stderr, flush=True)
            row["table1"] = {**row.get("table1", {}), **table1_row(G, detector, cfg, pairs=args.pairs, points=missing,
                                                                 seed=args.seed)}
        if not masked_only and "mouth" not in row:
            print(f"[{key}] mouth", file=sys.stderr, flush=True)
            row["mouth"] = mouth_row(unseen, unseen_rows[key], faces=args.faces, seeds=args.mouth_seeds)
        if args.mask_faces and key in args.mask_rows and "mask" not in row:
            print(f"[{key}] masked drag", file=sys.stderr, flush=True)
            # a rule that acts only with a mask leaves the unmasked drags of the recommended row as they are
            reuse = recommended_faces if masked_only else None
            row["mask"], faces = mask_row(G, detector, cfg, faces=args.mask_faces, unmasked=reuse)
            row["mask_faces"] = faces
        if key == "recommended":
            recommended_faces = row.get("mask_faces")
        row["seconds"] = row.get("seconds", 0.0) + time.perf_counter() - t0
        rows.append(row)
        results["rows"] = rows + [r for k, r in done.items() if k not in {x["key"] for x in rows}]
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"[{key}] {_summary(row)}", flush=True)
    print(f"freedrag_deviations: {len(rows)} rows in {out}")


if __name__ == "__main__":
    main()
