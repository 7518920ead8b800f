"""Every CUDA path, the drag benchmark and a trainer probe in one table: `make gpu-check`
(or `python scripts/gpu_check.py [device=cuda:1] [official_repo=/path/to/DragGAN] [only='[drag,trainer]']`)."""

import sys

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from eval.configs import register_configs
from eval.gpu_check import run_checks

register_configs()


@command("gpu_check")
def main(cfg) -> None:
    results = run_checks(cfg.device, quick=cfg.quick, resolutions=list(cfg.resolutions), official_repo=cfg.official_repo,
                         only=None if cfg.only is None else list(cfg.only),
                         out_dir=cfg.out_dir or HydraConfig.get().runtime.output_dir, progress=cfg.progress)
    failed = [r.name for r in results if r.status == "FAIL"]
    if failed:
        sys.exit(f"gpu-check: {len(failed)} check(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
