"""Convert an official network pickle to the safe format: `python scripts/export.py source=X.pkl output=X.safetensors`."""

from draggan.apps.command_line import command
from draggan.apps.commands import export_command
from draggan.apps.configs import register_configs

register_configs()


@command("export")
def main(cfg) -> None:
    export_command(cfg)


if __name__ == "__main__":
    main()
