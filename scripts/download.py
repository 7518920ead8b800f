"""Download registered checkpoints into the cache: `python scripts/download.py models='[stylegan2-ffhq-512]'`."""

import hydra

from draggan.apps.commands import download_command, one_line_errors
from draggan.apps.configs import register_configs

register_configs()


@hydra.main(version_base=None, config_path="../conf", config_name="download")
@one_line_errors
def main(cfg) -> None:
    download_command(cfg)


if __name__ == "__main__":
    main()
