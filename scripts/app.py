"""The web editor: `python scripts/app.py [generator=...] [port=7860]`, then open the printed address."""

from functools import partial
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from draggan.apps.editor import serve
from draggan.configs import from_config
from inversion.configs import InversionSettings, register_configs
from inversion.run import invert_photo

register_configs()


@command("app")
@explains_drag
def main(cfg) -> None:
    serve(cfg, invert=partial(invert_photo, s=from_config(InversionSettings, cfg.inversion)),
          out_dir=Path(HydraConfig.get().runtime.output_dir) / "sessions")


if __name__ == "__main__":
    main()
