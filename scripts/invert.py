"""Invert a photo into a generator: `python scripts/invert.py image=photo.png [generator=...]`."""

import json

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from eval.configs import register_configs
from eval.logging import make_logger
from inversion.run import run_invert

register_configs()


@hydra.main(version_base=None, config_path="../conf", config_name="invert")
def main(cfg) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    logger = make_logger(cfg.logger, out_dir, OmegaConf.to_container(cfg, resolve=True))
    try:
        results = run_invert(cfg, out_dir, logger=logger)
    finally:
        logger.finish()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
