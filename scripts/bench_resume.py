"""Does resuming a training from its compact state hurt? `python scripts/bench_resume.py [kimg] [split_kimg]`.

Trains a tiny 32-px model on the CPU straight through, and again stopped half-way and resumed from a full
and from a compact state (draggan/apps/training/state.py), and prints the comparison as one JSON object (on
stderr, which of the five trainings runs, every few seconds).
"""

import json
import sys
import tempfile

from draggan.apps.training.loop import TrainConfig
from draggan.apps.training.resume_check import measure_resume

if __name__ == "__main__":
    kimg = float(sys.argv[1]) if len(sys.argv) > 1 else 3.2
    split = float(sys.argv[2]) if len(sys.argv) > 2 else kimg / 2
    cfg = TrainConfig(resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512, channel_max=32, batch=16,
                      kimg=kimg, snapshot_kimg=0, log_every=5, grid_size=2, device="cpu", ema_kimg=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(dict(config=dict(resolution=32, batch=16, kimg=kimg, split_kimg=split),
                              **measure_resume(cfg, tmp, split_kimg=split, progress=True)), indent=2))
