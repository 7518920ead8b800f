"""Loading a user's class by `module:Name` (a drag method, a tracker), from the working directory or `PYTHONPATH`.

Only command lines and Python callers load by spec; a file from elsewhere (a session uploaded to the editor)
never names code to import (`draggan.methods.get_method(..., allow_import=False)`).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

_SPEC = re.compile(r"^(?P<module>[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*):(?P<name>[A-Za-z_][\w]*)$")


def is_spec(name: str) -> bool:
    """Whether `name` has the form `module:Name` (as opposed to a registered name)."""
    return isinstance(name, str) and _SPEC.match(name) is not None


def load_object(spec: str, what: str) -> Any:
    """The object `Name` of module `module` for `spec` = 'module:Name'; the working directory is searched first
    (as `python -m` would), then `sys.path`. A one-line ValueError names what failed."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"{what} {spec!r} is neither a registered name nor a 'module:Class' spec")
    module_name, name = match["module"], match["name"]
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what} {spec!r}: cannot import {module_name!r} from the working directory or PYTHONPATH "
                         f"({e})") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    if not hasattr(module, name):
        raise ValueError(f"{what} {spec!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no {name!r}")
    return getattr(module, name)
