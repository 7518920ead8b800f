"""Saving and loading edit sessions: `session.json` (points, config, per-step history) and
`latent.npz` (start and final latents, and the per-step optimiser snapshots for resume/roll-back).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from draggan.drag import DragSession
from draggan.networks import Generator

SESSION_FILE = "session.json"
LATENT_FILE = "latent.npz"


def json_safe(x: Any) -> Any:
    """`x` with every non-finite float replaced by None: JSON has no NaN or Infinity, and other tools
    (`JSON.parse`, `jq`) reject files that hold them."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_session(session: DragSession, folder: str | os.PathLike, *, generator: str | None = None) -> Path:
    """Write `session.json` and `latent.npz` into `folder` (each written atomically)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = session.state_dict()
    arrays = {"ws0": state["ws0"].numpy(), "ws_final": session.ws.detach().cpu().numpy()}
    if state["mask"] is not None:
        arrays["mask"] = state["mask"].numpy()
    for i, snap in enumerate(state["snapshots"]):
        arrays[f"step{i}_free"] = snap["free"].numpy()
        arrays[f"step{i}_handles_rc"] = snap["handles_rc"].numpy()
        for key, value in snap["adam"].items():
            arrays[f"step{i}_adam_{key}"] = value.numpy() if torch.is_tensor(value) else np.asarray(value)
    meta = {"generator": generator, "config": state["config"], "handles": state["handles"],
            "targets": state["targets"], "steps": len(state["history"]), "done": session.done,
            "final_handles": session.handles, "history": state["history"]}
    _atomic_write(folder / LATENT_FILE, lambda p: np.savez_compressed(open(p, "wb"), **arrays))
    text = json.dumps(json_safe(meta), indent=1, allow_nan=False)  # a step's loss is null where it was NaN
    _atomic_write(folder / SESSION_FILE, lambda p: p.write_text(text))
    return folder


def read_session_meta(folder: str | os.PathLike) -> dict:
    """The contents of a saved session's `session.json` (a FileNotFoundError if it is not a saved session)."""
    folder = Path(folder)
    for name in (SESSION_FILE, LATENT_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing: not a saved drag session")
    return json.loads((folder / SESSION_FILE).read_text())


def load_session(folder: str | os.PathLike, G: Generator) -> DragSession:
    """Rebuild a saved session at its last step; `rollback(k)` then returns to any earlier step."""
    folder = Path(folder)
    meta = read_session_meta(folder)
    arrays = np.load(folder / LATENT_FILE)
    snapshots = []
    for i in range(meta["steps"]):
        adam = {}
        for key in ("step", "exp_avg", "exp_avg_sq"):
            name = f"step{i}_adam_{key}"
            if name in arrays.files:
                adam[key] = torch.from_numpy(np.array(arrays[name]))
        snapshots.append({"free": torch.from_numpy(arrays[f"step{i}_free"]),
                          "handles_rc": torch.from_numpy(arrays[f"step{i}_handles_rc"]), "adam": adam})
    history = [{**h, "loss": math.nan if h["loss"] is None else h["loss"]} for h in meta["history"]]
    state = {"config": meta["config"], "handles": meta["handles"], "targets": meta["targets"],
             "ws0": torch.from_numpy(arrays["ws0"]), "mask": torch.from_numpy(arrays["mask"]) if "mask" in arrays.files else None,
             "history": history, "snapshots": snapshots}
    return DragSession.from_state_dict(G, state)
