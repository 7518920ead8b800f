"""The editor's errors: what the page is told when a request cannot be served."""

from __future__ import annotations


class EditorError(ValueError):
    """Bad input or a request that does not fit the session's state; its text is shown on the page."""


class Busy(EditorError):
    """The session is doing something that must finish first (an inversion, say)."""


class Cancelled(Exception):
    """Raised inside an inversion whose tab was closed."""

