"""Download registered checkpoints into the cache: `python scripts/download.py models='[stylegan2-ffhq-512]'`."""

from draggan.apps.command_line import command
from draggan.apps.commands import download_command
from draggan.apps.configs import register_configs

register_configs()


@command("download")
def main(cfg) -> None:
    download_command(cfg)


if __name__ == "__main__":
    main()
