"""Train the toy-faces landmark detector's CNN: `python scripts/train_detector.py [iterations=3000] [out=...]`.

The weights go into the run folder; `out=draggan/models/toyfaces-detector-64.safetensors` replaces the shipped ones.
"""

from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.configs import register_configs
from draggan.apps.toyfaces.detector import train_detector
from draggan.threads import use_threads

register_configs()


@command("train_detector")
def main(cfg) -> None:
    use_threads(cfg.threads)  # batches of renders: large enough to share the cores
    out = cfg.out or Path(HydraConfig.get().runtime.output_dir) / f"toyfaces-detector-{cfg.resolution}.safetensors"
    result = train_detector(out, resolution=cfg.resolution, iterations=cfg.iterations, batch=cfg.batch,
                            lr=cfg.lr, seed=cfg.seed, device=cfg.device)
    iterations = f"{result.iterations} iteration{'' if result.iterations == 1 else 's'}"
    print(f"detector: {iterations} in {result.wall_seconds / 60:.1f} min, "
          f"final loss {result.final_loss:.4f}; weights: {result.path}")


if __name__ == "__main__":
    main()
