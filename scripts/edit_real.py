"""Invert a photo and drag its points: `python scripts/edit_real.py image=photo.png 'points=[[x,y,tx,ty]]'`."""

import json

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from eval.logging import run_logged
from inversion.configs import register_configs
from inversion.run import run_edit_real

register_configs()


@command("edit_real")
@explains_drag
def main(cfg) -> None:
    print(json.dumps(run_logged(cfg, HydraConfig.get().runtime.output_dir, run_edit_real)))


if __name__ == "__main__":
    main()
