"""The registry of drag methods: `register_method(name, cls)`, `get_method(name)`, `available()`.

The methods shipped in `draggan/methods/` register themselves when their module is imported; the registry imports
every module of the package the first time a name is looked up, so no list of them is written anywhere. A user's
method registers itself the same way from its own file, or is named on the command line as `module:Class`
(`drag.method=mymethods:Nudge`), which `get_method` imports from the working directory or `PYTHONPATH`.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from draggan.methods.base import DragMethod
from draggan.plugins import is_spec, load_object

_METHODS: dict[str, type[DragMethod]] = {}
_DISCOVERED = False


def register_method(name: str, cls: type[DragMethod] | None = None):
    """Register `cls` (a `DragMethod` subclass) as drag method `name`; as a decorator without `cls`. Registering
    another class under a taken name is an error (the same class again is not)."""

    def add(cls: type[DragMethod]) -> type[DragMethod]:
        if not (isinstance(cls, type) and issubclass(cls, DragMethod)):
            raise TypeError(f"drag method {name!r} must be a subclass of draggan.methods.DragMethod, got {cls!r}")
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"a drag method's name must be a non-empty string without ':', got {name!r}")
        if _METHODS.get(name) not in (None, cls):
            raise ValueError(f"drag method {name!r} is already registered ({_METHODS[name].__qualname__})")
        if "name" not in cls.__dict__ or not cls.__dict__["name"]:
            cls.name = name  # its own class attribute (a subclass of a registered method gets its own name)
        _METHODS[name] = cls
        return cls

    return add if cls is None else add(cls)


def _discover() -> None:
    """Import every module of `draggan.methods` once: the shipped methods register themselves."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"draggan.methods.{module.name}")


def available() -> list[str]:
    """The registered drag methods' names, sorted."""
    _discover()
    return sorted(_METHODS)


def get_method(name: str, *, allow_import: bool = True) -> type[DragMethod]:
    """The class of drag method `name`: a registered name, or `module:Class` (imported from the working directory
    or `PYTHONPATH` when `allow_import`; a file from elsewhere, an uploaded session, may only name registered
    methods). An unknown name is a one-line ValueError listing the registered ones."""
    _discover()
    if is_spec(name) and not allow_import:
        raise ValueError(f"drag method {name!r} names code to import; only registered methods are accepted "
                         f"here ({', '.join(n for n in sorted(_METHODS) if not is_spec(n))})")
    if name in _METHODS:
        return _METHODS[name]
    if is_spec(name):
        cls = load_object(name, "drag method")
        if not (isinstance(cls, type) and issubclass(cls, DragMethod)):
            raise ValueError(f"drag method {name!r} is not a subclass of draggan.methods.DragMethod")
        if not cls.__dict__.get("name"):  # its module did not register it: it is known by its spec
            cls.name = name
        _METHODS[name] = cls
        return cls
    raise ValueError(f"unknown drag method {name!r} (expected one of {', '.join(sorted(_METHODS))}, "
                     "or module:Class for a method of your own)")
