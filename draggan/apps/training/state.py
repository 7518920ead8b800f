"""The compact training state: what a training in short chunks carries from one chunk to the next.

GPU time may come in slots of a few minutes whose outputs travel back in files of limited size
(16 MB each on this project's device machines), so the state between chunks must be small and split:

- `G.safetensors`, `D.safetensors`: the weights in float32 and their Adam moments (`exp_avg`,
  `exp_avg_sq`) in bfloat16: the moments are running averages that only scale each step, so their
  rounding (a relative 2^-9) changes a step by well under a percent; the weights stay exact;
- `G_ema.safetensors`: the moving average in float32 (the model that is used and shipped);
- `state.safetensors`: the random generators' states; counters and the configuration in its metadata.

Every file carries the iteration it was written at, and `load` refuses a folder whose files disagree
(an interrupted write). The files are safetensors: data, never code. The full-precision
`training-state.pt` of `draggan.apps.training.loop` resumes bit-exactly; this one resumes to within the
moments' rounding (measured in docs/training-256.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from draggan.files import atomic_write

STATE_DIR = "training-state"
FILES = ("G", "D", "G_ema", "state")
MOMENTS = ("exp_avg", "exp_avg_sq")


def _write(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str], limit_bytes: int | None) -> None:
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:  # the file is checked before it replaces the last good one
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        size = tmp.stat().st_size
        if limit_bytes is not None and size > limit_bytes:
            raise ValueError(f"{path.name} would be {size / 2 ** 20:.1f} MiB, over the state's limit of "
                             f"{limit_bytes / 2 ** 20:.1f} MiB: make the networks narrower")

    atomic_write(path, write)


def _network_and_moments(net: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The weights (by name) and each parameter's Adam moments in bfloat16 (by the same name)."""
    out = {f"param.{k}": v.float() for k, v in net.state_dict().items()}
    names = {id(p): n for n, p in net.named_parameters()}
    for p in opt.param_groups[0]["params"]:
        st = opt.state.get(p)
        if st:
            for m in MOMENTS:
                out[f"{m}.{names[id(p)]}"] = st[m].to(torch.bfloat16)
            out.setdefault("step", torch.as_tensor(st["step"], dtype=torch.float32).reshape([]).cpu())
    return out


def _restore(net: torch.nn.Module, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    net.load_state_dict({k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}, strict=True)
    if "step" not in tensors:  # written before the first optimiser step
        return
    state = opt.state_dict()
    names = [n for n, _ in net.named_parameters()]
    state["state"] = {i: {"step": tensors["step"].clone(), **{m: tensors[f"{m}.{n}"].float() for m in MOMENTS}}
                      for i, n in enumerate(names) if f"exp_avg.{n}" in tensors}
    opt.load_state_dict(state)  # casts the moments to each parameter's dtype and device


def save(folder: str | Path, *, G: torch.nn.Module, D: torch.nn.Module, G_ema: torch.nn.Module,
         opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, rng: dict[str, torch.Tensor],
         counters: dict[str, Any], config: dict[str, Any], limit_mb: float | None = 16.0) -> Path:
    """Write the compact state into `folder` (created); the state file last. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    limit = None if limit_mb is None else int(limit_mb * 2 ** 20)
    meta = {"iteration": str(counters["iteration"])}
    _write(_network_and_moments(G, opt_G), folder / "G.safetensors", meta, limit)
    _write(_network_and_moments(D, opt_D), folder / "D.safetensors", meta, limit)
    _write({k: v.float() for k, v in G_ema.state_dict().items()}, folder / "G_ema.safetensors", meta, limit)
    _write(rng, folder / "state.safetensors", {**meta, "counters": json.dumps(counters), "config": json.dumps(config)},
           limit)
    return folder


def exists(folder: str | Path) -> bool:
    return (Path(folder) / "state.safetensors").is_file()


def read_config(folder: str | Path) -> dict[str, Any]:
    """The training configuration the state was written with (read before anything is allocated)."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "state.safetensors"), framework="pt") as h:
        return json.loads((h.metadata() or {})["config"])


def load(folder: str | Path, *, G: torch.nn.Module, D: torch.nn.Module, G_ema: torch.nn.Module,
         opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, device: torch.device
         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load the networks and optimisers in place; returns (random generators' states, counters)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f"{f}.safetensors").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a complete training state: {', '.join(missing)} missing")
    metas = {}
    for f in FILES:
        with safe_open(str(folder / f"{f}.safetensors"), framework="pt") as h:
            metas[f] = h.metadata() or {}
    iterations = {f: m.get("iteration") for f, m in metas.items()}
    if len(set(iterations.values())) != 1:
        raise ValueError(f"{folder}: its files come from different iterations {iterations} (an interrupted write)")
    dev = str(device)
    _restore(G, opt_G, load_file(str(folder / "G.safetensors"), device=dev))
    _restore(D, opt_D, load_file(str(folder / "D.safetensors"), device=dev))
    G_ema.load_state_dict(load_file(str(folder / "G_ema.safetensors"), device=dev), strict=True)
    rng = load_file(str(folder / "state.safetensors"))  # generator states are CPU byte tensors
    return rng, json.loads(metas["state"]["counters"])
