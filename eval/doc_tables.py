"""The figures of the docs, written from the results files committed beside them (`docs/results/*.json`).

A markdown file marks each generated region with `<!-- results: NAME -->` ... `<!-- /results -->`;
`scripts/make_docs.py` rewrites every region from `REGIONS[NAME]` (a function of the results files), and a test
checks that the committed docs equal what it writes. A figure that appears in several places (Table 1's steps in
`docs/evaluation.md` and in the README) is read from one record, so the places cannot disagree; the best value of a
column is marked bold by rule, not by hand. Each results file says what was measured, with which command, torch
version and machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DOCS = ("README.md", "docs/evaluation.md", "docs/benchmarks.md")  # the files with generated regions
REGION = re.compile(r"(<!-- results: ([\w-]+) -->\n)(.*?)(<!-- /results -->)", re.S)
POINTS = ("1", "5", "17")


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def fmt(x, digits: int = 2) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def bold_best(values: list, best=min) -> list[bool]:
    """Which entries hold the column's best value (None is no value)."""
    present = [v for v in values if v is not None]
    top = best(present) if present else None
    return [v is not None and v == top for v in values]


def table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _cells(values: list, digits: int, best=min) -> list[str]:
    marks = bold_best(values, best)
    return [f"**{fmt(v, digits)}**" if m else fmt(v, digits) for v, m in zip(values, marks)]


def _slashed(d: dict, digits: int) -> str:
    return " / ".join(fmt(float(d[n]) if digits else d[n], digits) for n in POINTS if n in d)


def _seconds(runs: list[dict], digits: int = 2) -> list[str]:
    """'a / b / c' seconds per edit; each point count's fastest run in bold."""
    per = {n: bold_best([r["seconds"].get(n) for r in runs]) for n in POINTS}
    out = []
    for i, r in enumerate(runs):
        parts = []
        for n in POINTS:
            if n in r["seconds"]:
                d = 3 if r["seconds"][n] < 0.1 else digits
                text = fmt(float(r["seconds"][n]), d)
                parts.append(f"**{text}**" if per[n][i] else text)
        out.append(" / ".join(parts))
    return out


def table1() -> str:
    t1 = load("table1-shipped.json")
    runs = t1["runs"]
    md = {n: _cells([r["md"].get(n) for r in runs], 2) for n in POINTS}
    steps = [" / ".join(fmt(float(r["steps"][n]), 1) for n in POINTS if n in r["steps"]) if r["method"] != "uclt"
             else "1" for r in runs]
    rows = [[r["label"], md["1"][i], md["5"][i], md["17"][i], steps[i], s]
            for i, (r, s) in enumerate(zip(runs, _seconds(runs)))]
    return table(["method (tracker in the loop)", "MD 1 pt", "MD 5 pt", "MD 17 pt", "steps 1 / 5 / 17",
                  "s per edit 1 / 5 / 17"], rows)


def table1_no_edit() -> str:
    ne = load("table1-shipped.json")["no_edit"]
    return f"No edit: {' / '.join(fmt(ne[n]) for n in POINTS)} px for 1 / 5 / 17 points.\n"


def many_points() -> str:
    t1 = load("table1-shipped.json")
    by = {r["key"]: r for r in t1["runs"]}
    dg, fd = by["draggan_l1"], by["freedrag"]

    def ratios(values: dict, digits: int, strong: bool = False) -> list[str]:
        first = values["1"]
        out = [fmt(float(first), digits)]
        for n in ("5", "17"):
            r = f"{values[n] / first:.1f}x"
            out.append(f"{fmt(float(values[n]), digits)} ({f'**{r}**' if strong else r})")
        return out

    rows = [["DragGAN: steps per edit", *ratios(dg["steps"], 1)]]
    rows += [[e["label"], *ratios(e["seconds"], 3)] for e in t1["earlier_draggan_seconds"]]
    rows += [["DragGAN: seconds per edit, last run (all the speed-ups below)", *ratios(dg["seconds"], 3, True)],
             ["**FreeDrag (the default method): steps per edit**", *ratios(fd["steps"], 1)],
             ["**FreeDrag: seconds per edit, last run**", *ratios(fd["seconds"], 3, True)]]
    return table(["", "1 point", "5 points", "17 points"], rows)


def table2() -> str:
    t2 = load("table2-shipped.json")
    runs = t2["runs"]
    mse, psnr = _cells([r["mse"] for r in runs], 4), _cells([r["psnr"] for r in runs], 2, max)
    rows = [["no edit (image 1 against image 2)", fmt(t2["no_edit"]["mse"], 4), fmt(t2["no_edit"]["psnr"]), "", ""]]
    rows += [[r["label"], mse[i], psnr[i], fmt(float(r["steps"]), 1) if r["steps"] != 1 else "1",
              fmt(r["seconds"], 3 if r["seconds"] < 0.1 else 2)] for i, r in enumerate(runs)]
    return table(["method", "MSE", "PSNR (dB)", "steps", "s per edit"], rows)


def tracking() -> str:
    tr = load("tracking-shipped.json")
    methods = list(tr["methods"])
    best = {m: bold_best([t[m]["error"] for t in tr["trackers"]]) for m in methods}
    rows = []
    for i, t in enumerate(tr["trackers"]):
        cells = []
        for m in methods:
            e = fmt(t[m]["error"])
            cells.append(f"{f'**{e}**' if best[m][i] else e} ({t[m]['within_1px']:.1f} %)")
        rows.append([t["label"], *cells])
    rows.append(["estimates (steps x points with a detected truth)", *[str(tr["estimates"][m]) for m in methods]])
    return table(["tracker", *tr["methods"].values()], rows)


def readme_summary() -> str:
    """The README's one table: Table 1's MD and steps, Table 2's PSNR, each method's own tracking error."""
    t1, t2, tr = load("table1-shipped.json"), load("table2-shipped.json"), load("tracking-shipped.json")
    psnr = {r["key"]: r["psnr"] for r in t2["runs"]}
    own = next(t for t in tr["trackers"] if t["key"] == "in_loop")
    track = {"draggan_l1": own["draggan"]["error"], "freedrag": own["freedrag"]["error"],
             "stabledrag": own["stabledrag"]["error"]}
    runs = t1["runs"]
    md = {n: _cells([r["md"].get(n) for r in runs], 2) for n in POINTS}
    ps = _cells([psnr.get(r["key"]) for r in runs], 2, max)
    te = _cells([track.get(r["key"]) for r in runs], 2)
    rows = [["no edit", *[fmt(t1["no_edit"][n]) for n in POINTS], "", fmt(t2["no_edit"]["psnr"]), ""]]
    for i, r in enumerate(runs):
        steps = " / ".join(fmt(float(r["steps"][n]), 1) for n in POINTS if n in r["steps"]) if r["method"] != "uclt" \
            else "1"
        rows.append([r["label"], md["1"][i], md["5"][i], md["17"][i], steps, ps[i], te[i]])
    return table(["drag method (tracker in the loop)", "MD 1 pt", "MD 5 pt", "MD 17 pt", "steps 1 / 5 / 17 pt",
                  "paired PSNR (dB)", "tracking error (px)"], rows)


def readme_seconds() -> str:
    by = {r["key"]: r for r in load("table1-shipped.json")["runs"]}
    dg, fd = by["draggan_l1"]["seconds"], by["freedrag"]["seconds"]
    say = lambda s: " / ".join(fmt(float(s[n])) for n in POINTS)  # noqa: E731
    x = lambda s, n: f"{s[n] / s['1']:.1f}x"  # noqa: E731
    return (f"Seconds per edit, 1 / 5 / 17 points (one CPU thread, torch {load('table1-shipped.json')['torch']}): "
            f"DragGAN {say(dg)}, FreeDrag {say(fd)}: many points cost at most {max(fd['5'] / fd['1'], fd['17'] / fd['1']):.1f}x "
            f"a single one with FreeDrag ({x(fd, '5')}, {x(fd, '17')}), and {x(dg, '5')} / {x(dg, '17')} with DragGAN.\n")


def freedrag_cost() -> str:
    by = {r["key"]: r for r in load("table1-shipped.json")["runs"]}
    dg, fd = by["draggan_l1"], by["freedrag"]
    return (f"What it costs: {fd['steps']['1'] / dg['steps']['1']:.1f} times the steps and "
            f"{fd['seconds']['1'] / dg['seconds']['1']:.1f} times the time of a one-point DragGAN edit on the CPU "
            f"(Table 1: {fd['steps']['1']:.1f} against {dg['steps']['1']:.1f} steps, {fd['seconds']['1']:.2f} against "
            f"{dg['seconds']['1']:.2f} s).\n")


def unseen_protocols() -> str:
    u = load("unseen-model.json")
    runs = u["runs"]
    md = {n: _cells([r["md"][n] for r in runs], 2) for n in POINTS}
    ps, te = _cells([r["psnr"] for r in runs], 2, max), _cells([r["tracking"] for r in runs], 2)
    ne = u["no_edit"]
    rows = [["no edit", *[fmt(ne["md"][n]) for n in POINTS], "", fmt(ne["psnr"]), ne["tracking"]]]
    for i, r in enumerate(runs):
        steps = "1" if r["key"] == "uclt" else " / ".join(fmt(float(r["steps"][n]), 1) for n in POINTS)
        rows.append([r["label"], md["1"][i], md["5"][i], md["17"][i], steps, ps[i], te[i]])
    return table(["method", "MD 1 pt", "MD 5 pt", "MD 17 pt", "steps 1 / 5 / 17 pt", "paired PSNR (dB)",
                  "tracking error (px)"], rows)


def unseen_mouth() -> str:
    u = load("unseen-model.json")
    rows = []
    for r in u["mouth"]:
        cells = [fmt(v, 3) for v in r["left"]]
        if r["key"] == "freedrag":  # the method this measurement made the default
            rows.append([f"**{r['label']}**", *[f"**{c}**" for c in cells]])
        else:
            rows.append([r["label"], *cells])
    return table(["method", *u["mouth_columns"]], rows)


def bench_gpu() -> str:
    g = load("bench-drag.json")["gpu"]
    cols = ["precision", "px", "handles", "editor", "editor, eager", "floor", "floor, graph", "full-res", "official",
            "editor / graph floor", "official / editor"]
    keys = ["precision", "px", "handles", "editor", "editor_eager", "floor", "floor_graph", "full_res", "official",
            "editor_over_graph_floor", "official_over_editor"]
    digits = dict(editor_over_graph_floor=2)
    rows = [[fmt(r[k], digits.get(k, 1)) for k in keys] for r in g["rows"]]
    return (f"{g['device']}, torch {g['torch']} ({g['note']}), {g['date']}, commit of the drag step `{g['commit']}`:\n\n"
            + table(cols, rows))


def bench_cpu() -> str:
    c = load("bench-drag.json")["cpu"]
    keys = ["px", "editor", "floor", "full_res", "official", "official_over_editor", "editor_over_floor"]
    digits = dict(official_over_editor=2, editor_over_floor=2)
    rows = [[fmt(r[k], digits.get(k, 3)) for k in keys] for r in c["rows"]]
    return (f"{c['device']}, torch {c['torch']} ({c['note']}), {c['date']}; {c['how']}; seconds per step:\n\n"
            + table(["px", "editor", "floor", "full-res", "official", "official / editor", "editor / floor"], rows))


def threads() -> str:
    t = load("threads.json")
    rows = [[a["what"], f"{a['before']:.2f}x", f"**{a['after']:.2f}x** ({a['after_range'][0]:.2f}-{a['after_range'][1]:.2f})",
             f"<= {a['goal']}x"] for a in t["acceptance"]]
    units = [[u["work"], fmt(u["gmacs"]), f"{u['idle_estimate']:.2f}x",
              "" if u["busy_ratio_2_over_1"] is None else f"{u['busy_ratio_2_over_1']:.2f}x"] for u in t["per_unit"]]
    spin = t["spinning"]["toy_faces_64_ms"]
    return (table(["command (two processes spinning on the two cores)", f"before ({t['before_commit']})", "after",
                   "goal"], rows)
            + f"\n{t['commands']['timing']}; torch {t['torch']}, {t['machine']}, {t['date']}.\n\n"
            + table(["work", "G multiply-adds", "2 threads on free cores (estimate)", "2 threads / 1 on the busy machine"],
                    units)
            + f"\n{t['per_unit_how']}. Without the passive wait, the toy drag step took {spin['two_threads_spinning']:.0f} "
              f"ms on two spinning threads against {spin['one_thread']:.0f} ms on one.\n")


def domain() -> str:
    d = load("domain-toy-faces-64.json")
    groups = [("the model's own samples (truncation 1)", "sample"), ("renders of its domain it never saw", "inside"),
              ("photos and images from elsewhere", "outside")]
    rows = []
    for label, kind in groups:
        these = [r for r in d["rows"] if r["kind"] == kind]
        values = ", ".join(f"{r['name'].replace('_', ' ')} {r['psnr']:.1f}" if kind == "outside" else f"{r['psnr']:.1f}"
                           for r in these)
        rows.append([label, str(len(these)), f"{min(r['psnr'] for r in these):.1f}-{max(r['psnr'] for r in these):.1f}",
                     values])
    s = d["settings"]
    return (table(["images", "n", "projection PSNR (dB)", "each"], rows)
            + f"\nThreshold {d['threshold_psnr']} dB ({s['loss']} projection, {s['num_steps']} steps, {s['space']}); "
              f"flagged: {', '.join(d['flagged'])}; missed: {', '.join(d['missed']) or 'none'}. "
              f"Measured {d['date']}, torch {d['torch']}, {d['machine']}: `{d['command']}`.\n")


def test_suite() -> str:
    """The README's test sentence; a provisional record (its count from `pytest --collect-only`, before the suite
    was run and timed on this version) says so instead of giving a time."""
    t = load("test_suite.json")
    skipped = f", {t['skipped']} skipped" if t.get("skipped") else ""
    measured = ("not yet timed on this version: `make test-record` runs and times it" if t.get("provisional") else
                f"{t['seconds'] / 60:.1f} minutes on {t['machine']}, torch {t['torch']}; measured by the suite "
                f"itself, `make test-record`, {t['date']}")
    return (f"`make test` runs the fast tier ({t['passed']} tests{skipped}, {measured}); `make test-all` adds the "
            f"{t['deselected']} tests marked `slow` or `fuzz`.\n")


def freedrag_deviations(name: str = "freedrag-deviations.json") -> str:
    """docs/evaluation.md: each departure of the library's FreeDrag from its authors' code, measured (issue 25): today's
    table, and (`name`) the first ablation and the patch's larger sample, both before their rules were switched."""
    from eval.freedrag_deviations import markdown_table

    return markdown_table(load(name))


REGIONS: dict[str, Callable[[], str]] = {
    "table1": table1, "table1-no-edit": table1_no_edit, "many-points": many_points, "table2": table2,
    "tracking": tracking, "readme-summary": readme_summary, "readme-seconds": readme_seconds,
    "freedrag-cost": freedrag_cost, "unseen-protocols": unseen_protocols, "unseen-mouth": unseen_mouth,
    "bench-gpu": bench_gpu, "bench-cpu": bench_cpu, "threads": threads, "domain": domain, "test-suite": test_suite,
    "freedrag-deviations": freedrag_deviations,
    "freedrag-deviations-before": lambda: freedrag_deviations("freedrag-deviations-before-switch.json"),
    "freedrag-patch-px": lambda: freedrag_deviations("freedrag-patch-px.json"),
}


def rewrite(text: str) -> str:
    """`text` with every marked region written from the results (an unknown region name is an error)."""
    def one(m: re.Match) -> str:
        name = m.group(2)
        if name not in REGIONS:
            raise KeyError(f"unknown results region {name!r} (known: {', '.join(REGIONS)})")
        return m.group(1) + REGIONS[name]() + m.group(4)

    return REGION.sub(one, text)


def stale_docs(root: Path = ROOT) -> list[str]:
    """The docs whose marked regions differ from what the results give."""
    return [name for name in DOCS if rewrite((root / name).read_text()) != (root / name).read_text()]


def write_docs(root: Path = ROOT) -> list[str]:
    """Rewrite every doc's marked regions; returns the files that changed."""
    changed = []
    for name in DOCS:
        path = root / name
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            path.write_text(new)
            changed.append(name)
    return changed
