"""Drag points of a generated image: `python scripts/drag.py generator=... seed=0 'points=[[x,y,tx,ty]]'`."""

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from draggan.configs import register_configs
from draggan.edit import run_drag

register_configs()


@command("edit")
@explains_drag
def main(cfg) -> None:
    results = run_drag(cfg, out_dir=HydraConfig.get().runtime.output_dir)
    print(f"{results['steps']} step{'' if results['steps'] == 1 else 's'}, done={results['done']}; wrote {', '.join(results['files'].values())}")
    if results["stalled"]:
        print(f"the drag {results['stalled']}")


if __name__ == "__main__":
    main()
