"""Every script's entry point: `@command("edit")` is `@hydra.main` on `conf/edit.yaml`, with the command line
checked before Hydra runs it and the task's failures as one line (`draggan.apps.commands.one_line_errors`).

Hydra answers a mistake in the command line with 5-12 lines (the config search path, a hint about
HYDRA_FULL_ERROR) and accepts keys that no config has when they are given with `+` (`+seeds=0` ran and was
ignored). `command_line_problem` composes the command line once, as Hydra will, and says what is wrong in at most
two lines: what was given and why it is refused, then the valid choices or keys. A key added with `+` or `++` must
exist (or belong to a mapping that is open by design, such as `drag.method_options`); a `+group=option` that
adds a config group (`+experiment=table1`) is what `+` is for. A class of the user's own code is a value, not a
choice of a group (`drag.method=<module>:<Class>`, `tracker.name=<module>:<Class>`): it passes the check, and the
command imports it when it runs. A multirun is checked with the first value of each
sweep; `--help`, `--cfg` and the like go to Hydra unchecked.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EXIT_USAGE = 2  # a mistake in the command line (as argparse exits)


def command(config_name: str) -> Callable:
    """Decorate a script's task `main(cfg)`: `main()` checks the command line, then runs the task under Hydra."""

    def decorate(task: Callable) -> Callable:
        import hydra

        from draggan.apps.commands import one_line_errors

        under_hydra = hydra.main(version_base=None, config_path=str(CONF_DIR), config_name=config_name)(
            one_line_errors(task))

        @functools.wraps(task)
        def main() -> None:
            problem = command_line_problem(config_name, sys.argv[1:])
            if problem:
                name = Path(sys.argv[0]).name
                print(f"{name}: error: {problem[0]}", file=sys.stderr)
                for line in problem[1:]:
                    print(f"{name}: {line}", file=sys.stderr)
                sys.exit(EXIT_USAGE)
            under_hydra()

        return main

    return decorate


# Groups whose options a user's own code extends: a class of one's own is named through a key, not the group.
_OWN_CODE = {"drag_method": "drag.method=<module>:<Class>", "tracker": "tracker.name=<module>:<Class>"}

_UNCHECKED_FLAGS = ("help", "hydra_help", "version", "shell_completion", "info", "config_path", "config_name",
                    "config_dir", "experimental_rerun")


def command_line_problem(config_name: str, argv: list[str]) -> list[str] | None:
    """None when the command line composes with `conf/<config_name>.yaml` and adds no unknown key; else one or two
    lines: the problem, then what is valid."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # argparse has printed its own usage error
        raise
    if any(getattr(args, flag, None) for flag in _UNCHECKED_FLAGS):
        return None
    parser = OverridesParser.create()
    try:
        overrides = parser.parse_overrides(args.overrides)
    except OverrideParseException as e:
        return [f"cannot read the command line: {_first_line(e)}",
                "write key=value, e.g. 'points=[[32,40,32,44]]' (quote lists for the shell)"]
    lines = [o.input_line if not o.is_sweep_override() else f"{_prefix(o)}{o.key_or_group}={_first_value(o)}"
             for o in overrides]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        try:
            cfg = compose(config_name, overrides=lines, return_hydra_config=True)
        except Exception as e:  # noqa: BLE001 - every composition failure becomes its two lines
            return _explain(e, config_name, lines, compose)
        problem = _threads_problem(cfg)
        if problem:
            return problem
        loader = GlobalHydra.instance().config_loader()
        for k, o in enumerate(overrides):
            if not (o.is_add() or o.is_force_add()) or o.key_or_group.startswith("hydra"):
                continue
            if loader.get_group_options(o.key_or_group):
                continue  # +group=option: adds a config group, as `+experiment=table1`
            base = compose(config_name, overrides=lines[:k] + lines[k + 1:])
            problem = _unknown_key(base, o.key_or_group)
            if problem:
                return [f"{lines[k]}: {problem[0]} (keys that no config has are refused)", problem[1]]
    return None


def _threads_problem(cfg) -> list[str] | None:
    """`threads=` of a command (auto, a whole number >= 1 or null) is refused here, before any work starts."""
    from draggan.threads import thread_count

    if "threads" not in cfg:
        return None
    try:
        thread_count(cfg.threads, environ={})
    except ValueError:
        return _not_threads(f"threads={cfg.threads}")
    return None


def _not_threads(given: str) -> list[str]:
    return [f"{given}: not a thread count",
            "threads is auto (the cores this process may use), a whole number >= 1, or null (torch's default)"]


def _prefix(o) -> str:
    return "++" if o.is_force_add() else "+" if o.is_add() else ""


def _first_value(o) -> str:
    return next(iter(o.sweep_string_iterator()))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


def _keys(node) -> str:
    return ", ".join(str(k) for k in node.keys())


def _unknown_key(cfg, key: str) -> tuple[str, str] | None:
    """Why `key` cannot be added to `cfg` (None when it may): a missing key of a schema, not of an open mapping."""
    from omegaconf import OmegaConf

    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if parent is None or not OmegaConf.is_dict(parent):
        return f"no key {parent_key or key}", f"the config's keys: {_keys(cfg)}"
    if leaf in list(parent.keys()) or OmegaConf.is_struct(parent) is False:  # (`in` misses a ??? value)
        return None
    return f"no key {key}", f"{parent_key or 'the config'}'s keys: {_keys(parent)}"


def _explain(e: Exception, config_name: str, lines: list[str], compose) -> list[str]:
    import re

    from hydra.errors import MissingConfigException

    if isinstance(e, MissingConfigException) and getattr(e, "missing_cfg_file", None):
        group, _, option = str(e.missing_cfg_file).rpartition("/")
        given = next((line for line in lines if line.lstrip("+~").split("=", 1)[0] == group), f"{group}={option}")
        if e.options:
            own = f"; your own: {_OWN_CODE[group]}" if group in _OWN_CODE else ""
            return [f"{given}: {group} has no option {option!r}", f"{group} is one of: {', '.join(e.options)}{own}"]
        return [f"{given}: no config {e.missing_cfg_file!r}", "see --help for the config groups and their options"]
    cause = e.__cause__ or e
    match = re.search(r"override '([^']+)'", str(e))
    if match:  # a key no config has
        key = match.group(1)
        others = [line for line in lines if line.lstrip("+~").split("=", 1)[0] != key]
        try:
            problem = _unknown_key(compose(config_name, overrides=others), key)
        except Exception:  # noqa: BLE001 - the other overrides fail too: say what is known
            problem = None
        given = next((line for line in lines if line.lstrip("+~").split("=", 1)[0] == key), key)
        if problem:
            return [f"{given}: {problem[0]}", problem[1]]
    match = re.search(r"override (\S+)", str(e))
    if match and match.group(1).lstrip("+~").split("=", 1)[0] == "threads":  # a type the schema refuses (1.5)
        return _not_threads(match.group(1))
    given = f"{match.group(1)}: " if match else ""
    return [f"{given}{_first_line(cause)}"]
