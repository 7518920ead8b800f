"""Measure the toy-faces model's gates: `python scripts/model_gates.py [generator=toy-faces-64]`.

Prints the gates as one JSON object on the last line and writes it to `gates.json` in the run folder,
with `samples.png`: 64 samples (seeds 0-63 at the configured truncation).
"""

import json

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from eval.configs import register_configs
from eval.gates import run_gates

register_configs()


@command("gates")
@explains_drag
def main(cfg) -> None:
    print(json.dumps(run_gates(cfg, HydraConfig.get().runtime.output_dir)))


if __name__ == "__main__":
    main()
