"""Invert a photo and drag its points: `python scripts/edit_real.py image=photo.png 'points=[[x,y,tx,ty]]'`."""

import json

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from eval.configs import register_configs
from eval.logging import make_logger
from inversion.run import run_edit_real

register_configs()


@hydra.main(version_base=None, config_path="../conf", config_name="edit_real")
def main(cfg) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    logger = make_logger(cfg.logger, out_dir, OmegaConf.to_container(cfg, resolve=True))
    try:
        results = run_edit_real(cfg, out_dir, logger=logger)
    finally:
        logger.finish()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
