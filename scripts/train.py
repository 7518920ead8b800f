"""Train a StyleGAN2: `python scripts/train.py [train.kimg=...] [out_dir=...] [logger=none]`.

Running it again with the same `out_dir` continues the training from its last snapshot.
"""

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from draggan.apps.command_line import command
from draggan.apps.configs import register_configs
from draggan.apps.training.configs import TrainConfig
from draggan.apps.training.loop import train
from draggan.configs import from_config
from eval.logging import make_logger

register_configs()


@command("train")
def main(cfg) -> None:
    out_dir = cfg.out_dir or HydraConfig.get().runtime.output_dir
    train_cfg = from_config(TrainConfig, cfg.train)
    logger = make_logger(cfg.logger, out_dir, OmegaConf.to_container(cfg, resolve=True))
    try:
        result = train(train_cfg, out_dir, resume=cfg.resume, logger=logger)
    finally:
        logger.finish()
    print(f"trained {result.kimg:.1f} kimg in {result.total_wall_seconds / 60:.1f} min; "
          f"G_ema: {result.generator_path}")


if __name__ == "__main__":
    main()
