"""Invert a photo into a generator: `python scripts/invert.py image=photo.png [generator=...]`."""

import json

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from eval.logging import run_logged
from inversion.configs import register_configs
from inversion.run import run_invert

register_configs()


@command("invert")
def main(cfg) -> None:
    print(json.dumps(run_logged(cfg, HydraConfig.get().runtime.output_dir, run_invert)))


if __name__ == "__main__":
    main()
