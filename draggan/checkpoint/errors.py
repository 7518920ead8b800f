"""The error of every checkpoint that cannot be loaded: missing, truncated, corrupt, unsafe or not a generator."""

from __future__ import annotations


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt, unsafe or not a supported generator."""
