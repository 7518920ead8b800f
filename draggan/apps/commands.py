"""What the command-line scripts do, as plain functions (the scripts only parse their config), and how
they fail: `one_line_errors` (a Hydra task) and `one_line_main` (a script with its own arguments) turn an exception
into one line on stderr and a non-zero exit code."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from draggan.checkpoint import load_generator_file, save_generator
from draggan.download import check_file
from draggan.loading import resolve_checkpoint
from draggan.progress import phase
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
    source = resolve_checkpoint(cfg.source)
    with phase(f"export: converting {source}", enabled=cfg.progress):  # an official 1024-px pickle: seconds
        out = export_checkpoint(source, cfg.output)
    print(f"wrote {out}")
    return out


def error_line(e: BaseException) -> str:
    """An exception's message on one line (a KeyError without its quotes; OmegaConf's without its context lines;
    the type's name where the message alone would not say what went wrong)."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if isinstance(e, OmegaConfBaseException):
        lines = lines[:1]
    text = " ".join(lines)
    if not text or not isinstance(e, (ValueError, LookupError, OSError, RuntimeError, OmegaConfBaseException)):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text


def one_line_errors(task):
    """Wrap a `@hydra.main` task: an exception ends the command with `<script>: error: <message>` on one line of
    stderr and exit code 1, not a traceback. HYDRA_FULL_ERROR=1 keeps the traceback (for developers), and so
    does a multirun, where Hydra reports each failed job."""

    @functools.wraps(task)
    def wrapper(cfg):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if os.environ.get("HYDRA_FULL_ERROR") == "1" or HydraConfig.get().mode == RunMode.MULTIRUN:
            return task(cfg)
        try:
            return task(cfg)
        except Exception as e:  # noqa: BLE001 - every failure becomes its one line
            print(f"{Path(sys.argv[0]).name}: error: {error_line(e)}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper


def one_line_main(main):
    """Wrap the `main()` of a script that parses its own arguments (argparse: `scripts/report.py`, ...): an exception
    ends it as `one_line_errors` ends a Hydra command (one line on stderr, exit code 1; HYDRA_FULL_ERROR=1 keeps the
    traceback)."""

    @functools.wraps(main)
    def wrapper():
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            return main()
        try:
            return main()
        except Exception as e:  # noqa: BLE001 - every failure becomes its one line
            print(f"{Path(sys.argv[0]).name}: error: {error_line(e)}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapper


def explains_drag(task):
    """Wrap a `@hydra.main` task whose config has a `drag` group: with `explain=true` it prints every drag setting
    the command would run with and where each came from (`draggan.configs.explain_drag`), and does nothing else."""

    @functools.wraps(task)
    def wrapper(cfg):
        if cfg.get("explain"):
            from draggan.configs import explain_drag

            print(explain_drag(cfg))
            return None
        return task(cfg)

    return wrapper
