"""Record the FreeDrag authors' own GAN code on a small random 128-px generator, as test fixtures.

Ling et al., "FreeDrag: Feature Dragging for Reliable Point-based Image Editing", CVPR 2024; the
authors' GAN code is github.com/LPengYang/FreeDrag (`functions.py`: `free_drag`; `FreeDrag_gradio.py`:
the GUI that calls it). That code is imported from a checkout given on the command line and run as it
is; nothing of it is copied here or into the fixtures, which hold numbers only.

    python scripts/record_freedrag_official.py official_repo=/tmp/freedrag [out=tests/fixtures/freedrag_official]
        [noise_trials=4] [only=g256,g128/small_l]

What is run, as the GUI runs it (`docs/freedrag-official.md` says what each rule is):
- the generator: the authors' `training.networks.Generator`, built the way their GUI's loader builds it
  (the pickle's synthesis settings other than the channel counts dropped, so no float16 blocks and no
  conv clamp; left in training mode, as the GUI never calls `.eval()`), with random weights of our own;
- the latent: their `get_ws(z, 0, truncation_psi=0.7)` of a seeded normal `z`, as the GUI's `new_image`;
- the drag: `free_drag(G, points, mask, 128, 6, ws, max_steps, l_expected, d_max, 1, 'cpu')` with the
  GUI's `handle_size` 128 and `train_layer_index` 6, `l_expected` and `d_max` as tensors as the GUI passes
  them; `sample_interval` 1 so that every optimisation step is reported (it changes only what is shown).
- per step: the handles used in that step's loss (the positions the GUI paints yellow), each handle's
  loss at that step, and where each sub-motion ended (the losses of the end-of-sub-motion check); per case
  the final latent and why the run stopped. Their L1 losses are read by counting the calls of
  `torch.nn.L1Loss` objects while `free_drag` runs (a subclass put in its place for the run).
- float sensitivity: each case is rerun `noise_trials` times from the latent plus normal noise of
  standard deviation 1e-7, and the largest deviation of the handles (per step) and of the final latent
  from the unperturbed run is recorded: how far the authors' own code moves under float noise.

The fixture generator is written as numbers (`g128_meta.json`, `g128_weights.npz`, like the other
fixtures of `tests/fixtures`); its weights are float16 values (stored as float16, exact in float32) to keep
the files small. The weights are checked against the project's generator (`draggan.networks`) before
anything is recorded.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from draggan.latents import z_from_seeds  # noqa: E402
from draggan.networks import Generator  # noqa: E402

LATENT_SEED = 11  # seed of the edited image's z
TRUNCATION_PSI = 0.7  # the GUI's new_image
HANDLE_SIZE = 128  # the GUI's handle_size
TRAIN_LAYER_INDEX = 6  # the GUI's train_layer_index
MAX_STEPS = 2000  # the GUI's default max_step
SMOOTH_FROM = 64  # constant noise of the blocks of this resolution and above set to zero (see random_state_dict)
NOISE_STD = 1e-7  # latent noise of the sensitivity runs


def init_kwargs(resolution: int) -> dict:
    """A small generator. What the authors' GUI loader keeps of a pickle's synthesis settings is nothing (it
    builds Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs)); the channel counts
    are given here only because these weights are small. No float16 blocks, no conv clamp, as theirs."""
    return dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=resolution, img_channels=3,
                mapping_kwargs=dict(num_layers=2),
                synthesis_kwargs=dict(channel_base=1024, channel_max=32, num_fp16_res=0, conv_clamp=None))


@dataclass
class Case:
    """One recorded drag; points are (x, y) image pixels (the GUI's clicks are integers)."""

    handles: list  # [(x, y), ...]
    targets: list  # [(x, y), ...]
    l_expected: float = 0.3  # the GUI's default for faces
    d_max: float = 3.0  # the GUI's default for faces
    mask_box: list | None = None  # (x0, y0, x1, y1) inclusive pixel box painted as the movable region
    max_steps: int = MAX_STEPS  # the GUI's max_step
    note: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class FixtureGenerator:
    """A random generator and the drags recorded on it."""

    init_kwargs: dict
    seed: int  # of its random weights (no other fixture uses these generators)
    cases: dict
    note: str = ""


GENERATORS = {
    "g128": FixtureGenerator(init_kwargs(128), 2507, {
        "one_handle": Case([(50, 60)], [(58, 70)], note="the GUI's settings, one handle"),
        "two_handles": Case([(40, 40), (88, 84)], [(50, 46), (80, 74)], note="the GUI's settings, two handles"),
        "small_l": Case([(50, 60), (88, 84)], [(53, 64), (85, 80)], l_expected=0.05,
                        note="l_expected 0.05: short sub-motions; every branch of the line search (forward, stay, "
                             "back) and the template update run tens of times"),
        "tiny_l": Case([(50, 60), (88, 84)], [(52, 62), (86, 82)], l_expected=0.01,
                       note="l_expected 0.01: hundreds of steps near the template, where the L1 loss's kinks make "
                            "the run sensitive to float noise (see the noise record)"),
        "mask": Case([(50, 60)], [(58, 70)], mask_box=[34, 44, 74, 86],
                     note="the GUI's settings and a painted region (the mask term, weight 10, outside it)"),
        "late_cut": Case([(85, 29)], [(88, 23)], mask_box=[81, 19, 92, 33],
                         note="a tight painted region: the handle steps back after it was within 1 px, and a "
                              "sub-motion more than 10 steps later is cut to one step"),
        "step_limit": Case([(39, 66), (62, 76), (80, 97)], [(41, 62), (59, 72), (85, 91)], l_expected=0.05,
                           max_steps=60, note="three handles, stopped by max_step 60"),
    }, note="the feature map is the image's size: every unit conversion of their code is the identity here"),
    "g256": FixtureGenerator(init_kwargs(256), 2508, {
        "one_handle": Case([(100, 120)], [(116, 140)], note="the GUI's settings, one handle"),
        "two_handles": Case([(80, 80), (176, 168)], [(100, 92), (160, 148)], note="the GUI's settings, two handles"),
    }, note="128x128 features of a 256-px image: points at p / 2 in the map, the patch at +-1.5 cells, "
            "d_max 3 cells = 6 px, arrival within 0.5 cells"),
}


# --- the authors' code -------------------------------------------------------------------------------

def import_official(repo: str | Path):
    """`(free_drag, Generator)` of the authors' checkout at `repo`, with their reference (plain PyTorch) ops."""
    repo = Path(repo).resolve()
    if not (repo / "functions.py").is_file() or not (repo / "training" / "networks.py").is_file():
        raise SystemExit(f"{repo} is not a checkout of github.com/LPengYang/FreeDrag (no functions.py / training/networks.py)")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from torch_utils.ops import bias_act, upfirdn2d

    bias_act._init = lambda: False  # their CUDA extensions are never built here
    upfirdn2d._init = lambda: False
    import functions
    from training.networks import Generator as OfficialGenerator

    return functions.free_drag, OfficialGenerator


def random_state_dict(OfficialGenerator, spec: FixtureGenerator) -> dict[str, torch.Tensor]:
    """Random weights in the official layout, every entry perturbed (biases, w_avg, noise strengths
    non-trivial) and rounded to float16 values. The constant noise of the blocks from SMOOTH_FROM px up is
    zero: per-pixel noise there makes the features of a random network so rough that a one-pixel move
    changes them as much as a long one, which no trained generator does (and FreeDrag's line search
    needs features that change gradually along the line)."""
    torch.manual_seed(spec.seed)
    G = OfficialGenerator(**spec.init_kwargs)
    state = {}
    for name, t in G.state_dict().items():
        if "resample_filter" not in name:
            t = t + 0.2 * torch.randn_like(t)
        if name.endswith("noise_const") and t.shape[-1] >= SMOOTH_FROM:
            t = torch.zeros_like(t)
        state[name] = t.to(torch.float16).to(torch.float32)
    return state


def official_generator(OfficialGenerator, spec: FixtureGenerator, state):
    """The generator as the GUI's loader leaves it: float32, training mode (never `.eval()`), no gradients."""
    G = OfficialGenerator(**spec.init_kwargs)
    G.load_state_dict(state)
    return G.requires_grad_(False)


class RecordingL1(torch.nn.L1Loss):
    """`torch.nn.L1Loss` that logs each value: (grad enabled, input shape, value)."""

    log: list = []

    def forward(self, input, target):
        out = super().forward(input, target)
        RecordingL1.log.append((torch.is_grad_enabled(), tuple(input.shape), float(out.detach())))
        return out


@contextlib.contextmanager
def recording_l1():
    saved = torch.nn.L1Loss
    torch.nn.L1Loss = RecordingL1
    RecordingL1.log = []
    try:
        yield RecordingL1.log
    finally:
        torch.nn.L1Loss = saved


def gui_mask(box, size: int) -> np.ndarray:
    """The GUI's mask: [H, W] with 1 where the user painted (the region allowed to move)."""
    mask = np.zeros((size, size), np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0: y1 + 1, x0: x1 + 1] = 1
    return mask


def run_official(free_drag, G, ws0: torch.Tensor, case: Case) -> dict:
    """One drag by the authors' `free_drag`; per-step handles (x, y) and losses, sub-motion ends, final latent."""
    points = {"handle": [[y, x] for x, y in case.handles], "target": [[y, x] for x, y in case.targets]}  # GUI: [row, col]
    mask = gui_mask(case.mask_box, G.img_resolution)
    n = len(case.handles)
    steps, handles, losses, ends, stops = [], [], [], [], []
    final_ws = None
    with recording_l1() as log:
        seen = 0
        run = free_drag(G, points, mask, HANDLE_SIZE, TRAIN_LAYER_INDEX, ws0.clone(), case.max_steps,
                        torch.tensor(case.l_expected), torch.tensor(case.d_max), 1, device="cpu")
        for img, current, step_number, full, ws in run:
            new, seen = log[seen:], len(log)
            no_grad = [v for g, _, v in new if not g]
            if no_grad:  # the end-of-sub-motion losses, one per handle, before this report
                assert len(no_grad) == n, new
                ends.append({"after_step": steps[-1], "loss_end": no_grad})
            per_handle = [v for g, shape, v in new if g and len(shape) == 2]
            if step_number == (steps[-1] if steps else 0):  # a repeated report: the run stops here
                assert not per_handle
                stops.append("arrived" if no_grad else "step limit")
            else:
                assert step_number == len(steps) + 1 and len(per_handle) == n, (step_number, new)
                steps.append(step_number)
                handles.append([[float(c[1]), float(c[0])] for c in current])  # (row, col) -> (x, y)
                losses.append(per_handle)
            final_ws = ws.detach().clone()
        no_grad = [v for g, _, v in log[seen:] if not g]  # the end of a sub-motion after the last report
        if no_grad:
            ends.append({"after_step": steps[-1], "loss_end": no_grad})
    stop = stops[-1] if stops else "generator ended"
    return dict(handles_xy_per_step=handles, loss_per_step=losses, submotion_ends=ends, steps=len(steps),
                stop=stop, final_ws=final_ws)


def noise_sensitivity(free_drag, G, ws0, case: Case, reference: dict, trials: int) -> dict:
    """How far the authors' own run moves when the latent gets N(0, NOISE_STD^2) noise: per step the largest
    handle deviation over the trials (over the steps both runs took), the final latent's, each trial's length."""
    gen = torch.Generator().manual_seed(12345)
    per_step = np.zeros(reference["steps"])
    ws_dev, lengths = 0.0, []
    for _ in range(trials):
        noisy = ws0 + NOISE_STD * torch.randn(ws0.shape, generator=gen)
        other = run_official(free_drag, G, noisy, case)
        lengths.append(other["steps"])
        a, b = np.asarray(reference["handles_xy_per_step"]), np.asarray(other["handles_xy_per_step"])
        m = min(len(a), len(b))
        dev = np.abs(a[:m] - b[:m]).max(axis=(1, 2)) if m else np.zeros(0)
        per_step[:m] = np.maximum(per_step[:m], dev)  # steps a perturbed run did not reach: see `steps`
        ws_dev = max(ws_dev, float((other["final_ws"] - reference["final_ws"]).abs().max()))
    return dict(trials=trials, std=NOISE_STD, handle_dev_per_step=per_step.tolist(), final_ws_dev=ws_dev,
                steps=lengths)


# --- the check against the project's generator -------------------------------------------------------

def project_agreement(official_G, spec: FixtureGenerator, state, ws0) -> float:
    """Largest difference of the 128x128 block features and of the image between the authors' generator
    and `draggan.networks.Generator` on the same weights and latent."""
    ours = Generator(**spec.init_kwargs).eval().requires_grad_(False)
    ours.load_state_dict(state, strict=True)
    with torch.no_grad():
        feat_o, img_mid = official_G.get_features(ws0, x=None, img=None, mid_size=HANDLE_SIZE, noise_mode="const")
        _, img_o = official_G.get_features(ws0, x=feat_o, img=img_mid, mid_size=HANDLE_SIZE, noise_mode="const")
        img, feats = ours.synthesis(ws0, noise_mode="const", return_features=True)
    block = ours.synthesis.block_resolutions.index(HANDLE_SIZE)
    return max(float((feats[block] - feat_o).abs().max()), float((img - img_o).abs().max()))


# --- writing -----------------------------------------------------------------------------------------

def record(official_repo: str, out: Path, *, noise_trials: int = 4, only: list[str] | None = None,
           official_commit: str = "(commit not given)") -> None:
    """Record every case of every generator (`only`: generator names or `generator/case`) into `out`."""
    free_drag, OfficialGenerator = import_official(official_repo)
    out.mkdir(parents=True, exist_ok=True)
    for name, spec in GENERATORS.items():
        cases = {c: case for c, case in spec.cases.items() if not only or name in only or f"{name}/{c}" in only}
        if cases:
            record_generator(free_drag, OfficialGenerator, name, spec, cases, out, noise_trials=noise_trials,
                             official_commit=official_commit)


def record_generator(free_drag, OfficialGenerator, name: str, spec: FixtureGenerator, cases: dict, out: Path, *,
                     noise_trials: int, official_commit: str) -> None:
    state = random_state_dict(OfficialGenerator, spec)
    G = official_generator(OfficialGenerator, spec, state)
    # z of the seed as the GUI draws it (numpy's RandomState, the official tools' rule: `draggan.latents`); their
    # GUI hands the float64 values to the mapping, which makes them float32 first, as this does.
    z = z_from_seeds(Generator(**spec.init_kwargs), [LATENT_SEED])
    ws0 = G.get_ws(z, torch.zeros([1, 0]), truncation_psi=TRUNCATION_PSI).detach()
    agreement = project_agreement(G, spec, state, ws0)
    if agreement > 1e-4:
        raise SystemExit(f"the project's generator differs from the authors' by {agreement:.2e} on {name}'s weights")
    meta = {"init_kwargs": spec.init_kwargs, "num_ws": G.num_ws, "block_resolutions": G.synthesis.block_resolutions,
            "generator_seed": spec.seed,
            "notes": "Random weights (float16 values) in the official StyleGAN2-ADA layout; the authors' FreeDrag GUI "
                     "builds its generator in float32 without the pickle's synthesis settings (no fp16, no conv clamp)."}
    (out / f"{name}_meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    np.savez_compressed(out / f"{name}_weights.npz", **{k: v.numpy().astype(np.float16) for k, v in state.items()})
    arrays = {"z": z.numpy(), "ws0": ws0.numpy()}
    record_json = {
        "settings": {"handle_size": HANDLE_SIZE, "train_layer_index": TRAIN_LAYER_INDEX, "max_steps": MAX_STEPS,
                     "sample_interval": 1, "latent_seed": LATENT_SEED, "truncation_psi": TRUNCATION_PSI,
                     "lr": 0.002, "steps_per_submotion": 5, "interval_number": 10, "win_r": 3,
                     "noise_mode": "const", "precision": "float32 (CPU, reference ops)",
                     "generator_mode": "training (as the GUI leaves it: unfused modulated convolutions)",
                     "points": "(x, y) image pixels; the authors' code takes [row, col]",
                     "torch": torch.__version__, "project_generator_max_abs_diff": agreement,
                     "official_code": "github.com/LPengYang/FreeDrag " + official_commit, "note": spec.note},
        "cases": {},
    }
    for case_name, case in cases.items():
        t0 = time.perf_counter()
        rec = run_official(free_drag, G, ws0, case)
        sens = noise_sensitivity(free_drag, G, ws0, case, rec, noise_trials) if noise_trials else None
        key = case_name
        arrays[f"{key}_final_ws"] = rec["final_ws"].numpy()
        arrays[f"{key}_handles_xy"] = np.asarray(rec["handles_xy_per_step"], np.float32)  # [steps, N, 2]
        arrays[f"{key}_loss"] = np.asarray(rec["loss_per_step"], np.float32)  # [steps, N]
        arrays[f"{key}_end_step"] = np.asarray([e["after_step"] for e in rec["submotion_ends"]], np.int32)  # [E]
        arrays[f"{key}_loss_end"] = np.asarray([e["loss_end"] for e in rec["submotion_ends"]], np.float32)  # [E, N]
        summary = None
        if sens is not None:
            arrays[f"{key}_noise_handle_dev"] = np.asarray(sens["handle_dev_per_step"], np.float32)  # [steps]
            summary = {k: sens[k] for k in ("trials", "std", "final_ws_dev", "steps")}
            summary["handle_dev_max"] = float(max(sens["handle_dev_per_step"]))
        record_json["cases"][case_name] = {
            "handles_xy": [list(p) for p in case.handles], "targets_xy": [list(p) for p in case.targets],
            "l_expected": case.l_expected, "d_max": case.d_max, "mask_box_xyxy": case.mask_box,
            "max_steps": case.max_steps, "note": case.note, "steps": rec["steps"], "stop": rec["stop"], "noise": summary}
        print(f"{name}/{case_name}: {rec['steps']} steps, stop: {rec['stop']}, last handles {rec['handles_xy_per_step'][-1]}"
              + (f", noise: handles {summary['handle_dev_max']:.2e} px, final ws {summary['final_ws_dev']:.2e}"
                 if summary else "") + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    np.savez_compressed(out / f"{name}_reference.npz", **arrays)
    (out / f"{name}_freedrag.json").write_text(json.dumps(record_json, indent=1) + "\n")


def main(argv: list[str]) -> None:
    args = dict(a.split("=", 1) for a in argv)
    unknown = set(args) - {"official_repo", "out", "noise_trials", "only", "official_commit"}
    if unknown or "official_repo" not in args:
        raise SystemExit("usage: record_freedrag_official.py official_repo=PATH [out=DIR] [noise_trials=N] [only=a,b] "
                         "[official_commit=SHA]")
    torch.set_num_threads(1)
    record(args["official_repo"], Path(args.get("out", ROOT / "tests" / "fixtures" / "freedrag_official")),
           noise_trials=int(args.get("noise_trials", 4)), only=args["only"].split(",") if "only" in args else None,
           official_commit=args.get("official_commit", "(commit not given)"))


if __name__ == "__main__":
    main(sys.argv[1:])
