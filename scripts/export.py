"""Convert an official network pickle to the safe format: `python scripts/export.py source=X.pkl output=X.safetensors`."""

import hydra

from draggan.apps.commands import export_command, one_line_errors
from draggan.apps.configs import register_configs

register_configs()


@hydra.main(version_base=None, config_path="../conf", config_name="export")
@one_line_errors
def main(cfg) -> None:
    export_command(cfg)


if __name__ == "__main__":
    main()
