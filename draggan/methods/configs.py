"""Schema of `scripts/train_uclt.py` (conf/train_uclt.yaml; `draggan.methods.uclt.train_latent_transformer`),
registered with the others by `eval.configs.register_configs`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class UCLTTrainConfig:
    """Training of the latent transformer on a generator (scripts/train_uclt.py)."""

    generator: str = "toy-faces-64"  # registered name or path of the generator
    out: str | None = None  # weights file; None = draggan/models/uclt-<generator>.safetensors
    feature_block: int = 3  # block whose features the point tokens carry (toy-faces-64's drag block)
    rows: int = 6  # edited W+ rows (DragGAN's optimize_ws)
    width: int = 128  # transformer width
    layers: int = 3
    heads: int = 4
    batch: int = 32
    iterations: int = 20000
    max_minutes: float | None = 25.0  # stop (and save) after this wall time
    lr: float = 5e-4  # AdamW, cosine decay
    reuse: int = 4  # iterations each synthesised batch of pairs serves, with new points each time (synthesis is the cost)
    max_points: int = 17  # points per example: 1 to this many
    strength: list[float] = field(default_factory=lambda: [0.2, 1.0])  # how far w2's rows move towards another latent
    truncation_psi: float = 0.7
    seed: int = 0
    threads: int | str | None = "auto"  # torch CPU threads: auto (draggan/threads.py), a number, or null (torch's)
    log_every: int = 200
