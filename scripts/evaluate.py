"""Evaluate drag editing: `python scripts/evaluate.py benchmark=landmarks|paired|tracking tracker=... n_pairs=...`.

Writes `results.json` and `results.md` into the run folder (W&B offline by default; logger=none to
turn it off). Sweeps: `-m tracker=draggan_l1,dis drag.r1=2,3` (add hydra/launcher=local for parallel
runs on this machine, or hydra/launcher=slurm for a cluster), then `scripts/report.py` on the sweep folder.
A single run that measured nothing (an unavailable tracker) says why and exits with code 1.
"""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from eval.configs import register_configs
from eval.logging import run_logged
from eval.run import run_evaluation

register_configs()


@command("evaluate")
@explains_drag
def main(cfg) -> None:
    out = cfg.out_dir or HydraConfig.get().runtime.output_dir
    results = run_logged(cfg, out, run_evaluation)
    print(results["table"], end="")
    for note in results["notes"]:
        print(f"not measured: {note}")
    print(f"evaluate: {results['benchmark']} with tracker {results['tracker']} in {results['wall_seconds']:.1f} s; "
          f"results in {out}/results.json and results.md")
    if not results["measured"] and HydraConfig.get().mode != RunMode.MULTIRUN:  # a sweep goes on
        raise RuntimeError(f"nothing was measured: {'; '.join(results['notes'])}")


if __name__ == "__main__":
    main()
