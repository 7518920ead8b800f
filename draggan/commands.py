"""What the command-line scripts do, as plain functions (the scripts only parse their config)."""

from __future__ import annotations

import os
from pathlib import Path

from draggan.checkpoint import load_generator_file, save_generator
from draggan.download import check_file
from draggan.loading import resolve_checkpoint
from draggan.registry import MODELS, get_model_info


def export_checkpoint(source: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Convert a checkpoint (official PyTorch or TF pickle) into the project's safetensors format."""
    G = load_generator_file(source)
    return save_generator(G, output, extra_metadata={"source": Path(source).name})


def download_models(names: list[str], *, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Download registered models into the cache, or check the ones already there against their registered
    size and sha256; returns name -> local path. `['all']` = every one."""
    if list(names) == ["all"]:
        names = [n for n, m in MODELS.items() if m.url and not m.shipped]
    out = {}
    for name in names:
        info = get_model_info(name)
        if info.shipped:
            continue
        path = resolve_checkpoint(name, cache_dir=cache_dir or None)
        out[name] = str(check_file(path, sha256=info.sha256, size=info.size, what=f"model {name}"))
    return out


def download_command(cfg) -> dict[str, str]:
    """`scripts/download.py`: download the configured models, print where they are."""
    paths = download_models(list(cfg.models), cache_dir=cfg.cache_dir)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


def export_command(cfg) -> Path:
    """`scripts/export.py`: convert `cfg.source` into the safe format at `cfg.output`."""
    out = export_checkpoint(resolve_checkpoint(cfg.source), cfg.output)
    print(f"wrote {out}")
    return out
