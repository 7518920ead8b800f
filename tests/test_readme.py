"""The README, executed: every ```python block on the embedded model, and every command line of its ```bash blocks.

The README shows what a user types; here there is no internet, no official checkpoint and two CPU cores, so
each command runs with substitutions, all of them in `PLAN` below:
- `stylegan2-ffhq-512` becomes `toy-faces-64` (official checkpoints cannot be downloaded here), with points
  in its 64-px image;
- placeholders become real things: `[[x,y,tx,ty]]` and `[[...]]` the demo's lip drag, `<run>` a run this test
  made, `photo.jpg` a render of the toy-faces domain, `network-snapshot.pkl` and `/path/to/...pkl` an
  official-layout pickle of a small random generator, `mask.png` a disc this test paints; optional
  `[...]` arguments are given;
- long runs are shortened by overrides appended to the command (fewer pairs or steps), never by changing
  what the README's own arguments say.
Every command composes against its config in the default run (a misspelt or removed option fails); the
commands marked `fast` also run there, the others run under `make test-all` (slow), and the few that need
the internet or the user's shell are said to be covered elsewhere, with where.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LIP = "[[32,40,32,44]]"  # the demo's drag: the lower lip of seed 0 of toy-faces-64, 4 px down


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)


def command_lines() -> list[str]:
    """Every command of the ```bash blocks, without its comment."""
    lines = [line.split(" #")[0].strip() for block in blocks("bash") for line in block.splitlines()]
    return [line for line in lines if line]


# How each README command runs here: (what it starts with, how, substitutions, appended overrides).
# how: "fast" runs in the default tier, "slow" under -m slow, "elsewhere: <where>" is covered by another test.
FAST_INVERSION = ["inversion=mse", "inversion.num_steps=20", "inversion.w_avg_samples=200", "inversion.pti.num_steps=5",
                  "logger=none", "progress=false"]
FAST_EVAL = ["threads=1", "progress=false", "logger=none", "examples=0", "benchmark.fid=false",
             "'benchmark.num_points=[1]'"]
PLAN = [
    ("make demo", "elsewhere: tests/scripts/test_drag_script.py::test_demo_edit_on_the_embedded_model", {}, []),
    ("make test", "elsewhere: this suite", {}, []),
    ("make gpu-check", "elsewhere: needs a GPU; tests/eval/test_gpu_check.py runs its checks on the CPU", {}, []),
    ("ssh -L", "elsewhere: the user's SSH, not a command of this project", {}, []),
    ("python scripts/app.py generator=", "slow", {"stylegan2-ffhq-512": "toy-faces-64"}, ["threads=1"]),
    ("python scripts/app.py", "slow", {}, ["threads=1", "port=0"]),
    ("python scripts/drag.py seed=0", "fast", {}, ["progress=false"]),
    ("python scripts/drag.py generator=stylegan2-ffhq-512", "fast",
     {"stylegan2-ffhq-512": "toy-faces-64", "[[250,300,250,340]]": LIP}, ["drag.max_steps=20", "progress=false"]),
    ("python scripts/drag.py drag_method=draggan", "fast", {}, ["drag.max_steps=5", "progress=false"]),
    ("python scripts/drag.py drag=paper drag.lr=0.01 explain=true", "fast", {}, []),
    ("python scripts/drag.py drag.method=mymethods:Straight", "fast", {}, ["progress=false"]),
    ("python scripts/drag.py generator=/path/to/", "fast",
     {"/path/to/network-snapshot.pkl": "{pkl}", "[[x,y,tx,ty]]": LIP}, ["drag.max_steps=5", "progress=false"]),
    ("python scripts/drag.py resume=outputs/drag/<run> rollback_to=20", "fast", {"outputs/drag/<run>": "{run}"},
     ["drag.max_steps=3", "progress=false"]),
    ("python scripts/drag.py resume=outputs/drag/<run> 'points=", "fast",
     {"outputs/drag/<run>": "{run}", "[[x,y,tx,ty]]": "[[30,30,34,30]]"}, ["drag.max_steps=3", "progress=false"]),
    ("python scripts/download.py", "elsewhere: needs the internet; tests/draggan/test_download.py downloads "
     "against a local HTTP server and tests/scripts/test_checkpoint_scripts.py runs this script", {}, []),
    ("python scripts/export.py", "fast", {"network-snapshot.pkl": "{pkl}"}, []),
    ("python scripts/bench_drag.py", "slow", {}, ["resolutions=[128]", "devices=[cpu]", "steps=1", "warmup=0"]),
    ("python scripts/train.py", "slow", {"train.kimg=300": "train.kimg=0.032"},
     ["train.batch=8", "train.resolution=16", "train.channel_base=256", "train.grid_size=2",
      "train.snapshot_kimg=0.032", "logger=none"]),
    ("python scripts/model_gates.py", "slow", {}, ["num_samples=4", "num_pairs=1", "num_renders=4", "progress=false"]),
    ("python scripts/train_uclt.py", "slow", {}, ["iterations=2", "batch=4", "width=32", "layers=1", "heads=2",
                                                  "max_points=3", "out=uclt.safetensors"]),
    ("python scripts/drag_checks.py check=mask", "slow", {}, ["num_faces=1", "steps=5"]),
    ("python scripts/drag_checks.py check=mouth", "slow", {}, ["num_faces=1", "steps=5"]),
    ("python scripts/make_toyfaces.py", "slow", {"num_images=10000": "num_images=8"}, []),
    ("python scripts/train_detector.py", "slow", {}, ["iterations=2", "batch=4", "out=detector.safetensors"]),
    ("python scripts/invert.py", "slow", {"stylegan2-ffhq-512": "toy-faces-64"}, FAST_INVERSION),
    ("python scripts/edit_real.py image=", "slow", {"[[x,y,tx,ty]]": LIP}, FAST_INVERSION + ["drag.max_steps=3"]),
    ("python scripts/edit_real.py inversion_dir=", "slow",
     {"outputs/invert/<run>": "{inversion}", "[[...]]": LIP}, FAST_INVERSION + ["drag.max_steps=3"]),
    ("python scripts/evaluate.py benchmark=landmarks", "slow", {"n_pairs=100": "n_pairs=1"}, FAST_EVAL),
    ("python scripts/evaluate.py benchmark=paired", "slow", {}, FAST_EVAL + ["n_pairs=1", "benchmark.paired_points=4",
                                                                            "drag.max_steps=4"]),
    ("python scripts/evaluate.py benchmark=tracking", "slow", {}, FAST_EVAL + ["n_pairs=1", "drag.max_steps=4"]),
    ("python scripts/evaluate.py drag.method=mymethods:Straight", "slow", {"n_pairs=10": "n_pairs=1"},
     FAST_EVAL[:-1] + ["'benchmark.num_points=[1,5]'"]),
    ("python scripts/evaluate.py -m", "slow", {}, FAST_EVAL + ["n_pairs=1", "drag.max_steps=4",
                                                               "hydra.sweep.dir=multirun/sweep"]),
    ("python scripts/evaluate.py +experiment=", "elsewhere: hours of sweeps; composed here, and each of its runs "
     "is a benchmark run above", {}, []),
    ("python scripts/report.py", "slow", {"multirun/evaluate/<time>": "multirun/sweep"}, []),
]


def plan_of(line: str):
    matches = [p for p in PLAN if line.startswith(p[0])]
    assert matches, f"README command without a plan in tests/test_readme.py: {line}"
    return max(matches, key=lambda p: len(p[0]))  # the most specific


def argv_of(line: str, subs: dict, extra: list[str], places: dict) -> list[str]:
    for old, new in subs.items():
        assert old in line, (old, line)
        line = line.replace(old, new.format(**places))
    line = re.sub(r"\[(\S+=[^\]\s]+)\]", r"\1", line)  # optional arguments: given
    args = shlex.split(line) + [shlex.split(e)[0] for e in extra]
    assert args[0] == "python"
    return [sys.executable, str(ROOT / args[1]), *args[2:]]


def test_every_readme_command_has_a_plan():
    lines = command_lines()
    assert len(lines) >= 20
    for line in lines:
        plan_of(line)


# ------------------------------------------------------------------------------------- composing


def _config_name(script: str) -> str:
    return re.search(r'@command\("(\w+)"\)', (ROOT / script).read_text()).group(1)


@pytest.mark.parametrize("line", [c for c in command_lines() if c.startswith("python scripts/")
                                  and "report.py" not in c])
def test_every_readme_command_composes(line, tmp_path):
    """The options the README shows exist and take the values it gives (the sweep's first value of a -m)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from eval.configs import register_configs

    _, _, subs, _ = plan_of(line)
    places = dict(pkl="net.pkl", run="run", inversion="inv")
    argv = argv_of(line, subs, [], places)
    overrides = [a for a in argv[2:] if a != "-m"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    overrides = [f"{o.input_line.split('=')[0]}={next(o.sweep_string_iterator())}" if o.is_sweep_override()
                 else o.input_line for o in parsed]
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        compose(config_name=_config_name(Path(argv[1]).relative_to(ROOT).as_posix()), overrides=overrides)


# ------------------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """The files the README's placeholders stand for, in the folder where the commands run."""
    from draggan.render import save_png, to_uint8
    from draggan.apps.toyfaces.renderer import render_seeds
    from tests.conftest import tiny_generator
    from tests.helpers.official_layout import write_official_pickle

    cwd = tmp_path_factory.mktemp("readme")
    write_official_pickle(tiny_generator(64), cwd / "net.pkl")
    photo = render_seeds([123], 64)[0][:1]
    save_png(to_uint8(photo), cwd / "photo.jpg")
    save_png(to_uint8(photo), cwd / "photo.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).ellipse((20, 28, 44, 52), fill=255)  # the mouth and around it may move
    mask.save(cwd / "mask.png")
    (cwd / "mymethods.py").write_text(blocks("python")[1])  # "Add your own method": the README's file
    return {"cwd": cwd, "pkl": str(cwd / "net.pkl"), "run": str(cwd / "outputs/drag/first"),
            "inversion": str(cwd / "outputs/invert/first")}


def run_readme(line: str, places: dict, out: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    _, _, subs, extra = plan_of(line)
    argv = argv_of(line, subs, extra, places)
    if out is not None and "-m" not in argv and "report.py" not in argv[1]:
        argv.append(f"hydra.run.dir={out}")
    r = subprocess.run(argv, cwd=places["cwd"], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, OMP_NUM_THREADS="1", DRAGGAN_CACHE=str(places["cwd"] / "cache")))
    assert r.returncode == 0, f"{line}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _results(folder) -> dict:
    return json.loads((Path(folder) / "results.json").read_text())


def test_fast_readme_commands_run(places):
    """The drag commands and the export, as the README writes them (with the substitutions of PLAN)."""
    lines = {plan_of(c)[0]: c for c in command_lines() if plan_of(c)[1] == "fast"}
    cwd = places["cwd"]
    r = run_readme(lines["python scripts/drag.py drag=paper drag.lr=0.01 explain=true"], places, str(cwd / "explain"))
    assert re.search(r"^lr +0\.01 +override$", r.stdout, re.M) and re.search(r"^method +'draggan' +preset:paper$",
                                                                            r.stdout, re.M), r.stdout
    assert re.search(r"^feature_block +3 +adapted:", r.stdout, re.M) and not (cwd / "explain" / "results.json").exists()
    run_readme(lines["python scripts/drag.py drag.method=mymethods:Straight"], places, str(cwd / "mine"))
    mine = _results(cwd / "mine")
    assert mine["done"] and mine["steps"] == 5 and mine["final_handles"] == [[32.0, 44.0]]
    settings = yaml.safe_load((cwd / "mine" / "drag_config.yaml").read_text())
    assert settings["method"] == {"value": "mymethods:Straight", "source": "override"}
    assert settings["lr"] == {"value": 0.01, "source": "model:toy-faces-64"}
    run_readme(lines["python scripts/drag.py seed=0"], places, places["run"])
    first = _results(places["run"])
    assert first["done"] and first["steps"] > 20  # enough steps for the README's rollback_to=20
    r = run_readme(lines["python scripts/drag.py generator=stylegan2-ffhq-512"], places, str(cwd / "ffhq"))
    session = json.loads((cwd / "ffhq" / "session.json").read_text())
    assert session["config"]["lr"] == 1e-3 and session["config"]["min_radius"] == 1.0  # drag=official, adapted
    assert (np.load(cwd / "ffhq" / "latent.npz")["mask"].sum()) > 0  # mask=mask.png
    run_readme(lines["python scripts/drag.py generator=/path/to/"], places, str(cwd / "pkl"))
    assert json.loads((cwd / "pkl" / "session.json").read_text())["generator"] == places["pkl"]
    run_readme(lines["python scripts/drag.py resume=outputs/drag/<run> rollback_to=20"], places, str(cwd / "rb"))
    assert _results(cwd / "rb")["steps"] <= 21 + 3
    assert np.array_equal(np.asarray(Image.open(cwd / "rb" / "before.png")),
                          np.asarray(Image.open(Path(places["run"]) / "before.png")))  # the session's start
    run_readme(lines["python scripts/drag.py resume=outputs/drag/<run> 'points="], places, str(cwd / "seg"))
    assert _results(cwd / "seg")["new_segment"]
    r = run_readme(lines["python scripts/export.py"], places, str(cwd / "export"))
    assert (cwd / "generator.safetensors").is_file() and "wrote" in r.stdout


README_BLOCK_CHECKS = [  # what each ```python block must print or write, in order
    (r"^True \[\(3\d\.0, 4\d\.0\)\] \d+ None$", "outputs/my_edit/session.json"),
    (r"^5 \[\(32\.0, 44\.0\)\]$", None),  # "Add your own method": 4 one-pixel steps, then the stop
    (r"^\[\(\d+\.\d+, \d+\.\d+\)\]$", None),  # FreeDrag's handles lie on the line, between pixels
    (r"^landmarks \d+\.\d\d px from their targets, \d+\.\d\d px after the drags$", None),
]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_readme_python_blocks_run(index, places):
    """Every ```python block, as written (the embedded model; photo.png is a render of the toy-faces domain)."""
    code = blocks("python")[index]
    assert index < len(README_BLOCK_CHECKS), "a new ```python block in the README needs its check here"
    pattern, written = README_BLOCK_CHECKS[index]
    r = subprocess.run([sys.executable, "-c", code], cwd=places["cwd"], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    assert r.returncode == 0, code + "\n" + r.stderr[-3000:]
    assert re.search(pattern, r.stdout.strip().splitlines()[-1]), r.stdout
    if written:
        assert (places["cwd"] / written).is_file()


@pytest.mark.slow
def test_slow_readme_commands_run(places):
    """Every other runnable command, shortened by the overrides of PLAN."""
    cwd = places["cwd"]
    lines = [c for c in command_lines() if plan_of(c)[1] == "slow"]
    order = ["scripts/invert.py", "scripts/edit_real.py", "scripts/evaluate.py", "scripts/report.py"]
    lines.sort(key=lambda c: next((i for i, s in enumerate(order) if s in c), -1))  # producers before users
    for i, line in enumerate(lines):
        if "scripts/app.py" in line:
            _serve_once(line, places)
            continue
        out = places["inversion"] if "scripts/invert.py" in line else str(cwd / f"slow{i}")
        r = run_readme(line, places, out, timeout=900)
        if "scripts/report.py" in line:
            assert (cwd / "multirun" / "sweep" / "report.md").is_file(), r.stdout


def _serve_once(line: str, places: dict) -> None:
    """Start the editor as the README does, wait for its address, stop it."""
    _, _, subs, extra = plan_of(line)
    argv = argv_of(line, subs, extra, places) + [f"hydra.run.dir={places['cwd'] / 'app'}"]
    argv = [a for a in argv if not a.startswith("port=8000")] + (["port=0"] if "port=0" not in argv else [])
    proc = subprocess.Popen(argv, cwd=places["cwd"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(200):
            text = proc.stdout.readline()
            if "DragGAN editor on http://127.0.0.1:" in text or (not text and proc.poll() is not None):
                break
        assert "DragGAN editor on" in text, text
    finally:
        proc.terminate()
        proc.wait(20)
