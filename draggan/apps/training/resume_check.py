"""Does resuming a training run hurt? The measurement behind the compact training state's claim
(`scripts/bench_resume.py`; the state itself is `draggan.apps.training.state`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from draggan.apps.training.loop import train
from draggan.checkpoint import load_generator_file
from draggan.progress import phase


def measure_resume(cfg, out_dir: str | Path, *, split_kimg: float,
                   progress: bool = False) -> dict[str, Any]:  # say on stderr which of the 5 trainings runs
    """Does resuming hurt? Train `cfg` straight, and again stopped at `split_kimg` and resumed from a full and
    from a compact state; compare the three runs' G_ema images (fixed latents) and losses after the split.

    Returns the mean absolute difference of the resumed runs' images from the straight run's, next to how much
    the straight run's images changed after the split (the scale of the training's own progress), and the
    mean losses after the split of each run.
    """
    class Curves:
        def __init__(self):
            self.rows: list[tuple[int, dict[str, float]]] = []

        def log(self, metrics, step):
            self.rows.append((step, dict(metrics)))

        def log_image(self, name, path, step):
            pass

    out_dir = Path(out_dir)
    z = torch.randn([16, cfg.z_dim], generator=torch.Generator().manual_seed(123))

    def images(path):
        G = load_generator_file(path)
        with torch.no_grad():
            return G.synthesis(G.mapping(z, None))

    def late_means(curves, split_it):
        late = [m for step, m in curves.rows if step > split_it]
        return {k: sum(m[k] for m in late) / len(late) for k in ("loss_G", "loss_D")}

    straight = Curves()  # uninterrupted, with one snapshot at the split
    with phase(f"resume check: straight through ({cfg.kimg} kimg)", enabled=progress):
        end = train(dataclasses.replace(cfg, snapshot_kimg=split_kimg), out_dir / "straight", progress=False,
                    logger=straight)
    mid_images = images(out_dir / "straight" / f"network-snapshot-{split_kimg:09.3f}kimg.safetensors")
    split_it = round(split_kimg * 1000 / cfg.batch)
    result: dict[str, Any] = dict(iterations=end.iterations, split_iteration=split_it,
                                  straight_change_after_split=float((images(end.generator_path) - mid_images).abs().mean()),
                                  losses_after_split=dict(straight=late_means(straight, split_it)))
    for kind in ("full", "compact"):
        curves = Curves()
        c = dataclasses.replace(cfg, state_format=kind)
        with phase(f"resume check: {kind} state, to the split ({split_kimg} kimg)", enabled=progress):
            train(dataclasses.replace(c, kimg=split_kimg), out_dir / kind, progress=False)
        with phase(f"resume check: {kind} state, resumed to {cfg.kimg} kimg", enabled=progress):
            res = train(c, out_dir / kind, progress=False, logger=curves)
        result[f"{kind}_vs_straight"] = float((images(res.generator_path) - images(end.generator_path)).abs().mean())
        result["losses_after_split"][kind] = late_means(curves, split_it)
    return result
