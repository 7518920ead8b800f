"""Time per drag step of the editor against the fwd+bwd floor, a full-resolution step and (with
`official_repo=`) the official DragGAN step: `python scripts/bench_drag.py`."""

import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.benchmark import bench_drag
from draggan.apps.configs import register_configs
from draggan.threads import use_threads

register_configs()


@command("bench_drag")
def main(cfg) -> None:
    use_threads(cfg.threads)  # the CPU rows time every core this process may use (or threads=N)
    rows = bench_drag(cfg.resolutions, cfg.devices, steps=cfg.steps, warmup=cfg.warmup, rounds=cfg.rounds,
                      handles=list(cfg.handles),
                      official_repo=cfg.official_repo, fp32=cfg.fp32, fp16=cfg.fp16, methods=tuple(cfg.methods),
                      progress=cfg.progress)
    (Path(HydraConfig.get().runtime.output_dir) / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
