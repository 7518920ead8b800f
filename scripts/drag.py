"""Drag points of a generated image: `python scripts/drag.py generator=... seed=0 'points=[[x,y,tx,ty]]'`."""

import hydra
from hydra.core.hydra_config import HydraConfig

from draggan.apps.commands import one_line_errors
from draggan.edit import run_drag
from eval.configs import register_configs

register_configs()


@hydra.main(version_base=None, config_path="../conf", config_name="edit")
@one_line_errors
def main(cfg) -> None:
    results = run_drag(cfg, out_dir=HydraConfig.get().runtime.output_dir)
    print(f"{results['steps']} steps, done={results['done']}; wrote {', '.join(results['files'].values())}")
    if results["stalled"]:
        print(f"the drag {results['stalled']}")


if __name__ == "__main__":
    main()
