"""Train the latent transformer baseline (UserControllableLT, Endo 2022) on a generator:
`python scripts/train_uclt.py [generator=toy-faces-64] [max_minutes=25] [out=...]`; writes the weights and a
JSON card beside them (draggan/methods/uclt.py says how it trains), in the run folder unless `out=` names the file
(`out=draggan/models/uclt-toy-faces-64.safetensors` replaces the shipped weights)."""

import dataclasses
import json
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from draggan.apps.command_line import command
from draggan.apps.configs import register_configs
from draggan.configs import from_config
from draggan.loading import load_generator
from draggan.methods.configs import UCLTTrainConfig
from draggan.methods.uclt_training import train_latent_transformer

register_configs()


@command("train_uclt")
def main(cfg) -> None:
    train_cfg = from_config(UCLTTrainConfig, cfg)
    if not train_cfg.out:  # the run folder, never the package's models (an explicit out= may replace those)
        name = Path(str(train_cfg.generator)).name.removesuffix(".safetensors")
        train_cfg = dataclasses.replace(train_cfg, out=str(Path(HydraConfig.get().runtime.output_dir) /
                                                           f"uclt-{name}.safetensors"))
    G = load_generator(train_cfg.generator, device="cpu")
    card = train_latent_transformer(G, train_cfg, generator_name=str(train_cfg.generator))
    Path(card["weights"]).with_suffix(".json").write_text(json.dumps(card, indent=1))
    iterations = f"{card['iterations']} iteration{'' if card['iterations'] == 1 else 's'}"
    print(f"trained {iterations} in {card['minutes']:.1f} min "
          f"(loss / no-edit loss {card['final_loss_ratio']:.3f}); weights: {card['weights']}")


if __name__ == "__main__":
    main()
