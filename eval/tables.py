"""Results as markdown tables (`results.md` of an evaluation run, `report.md` of a sweep)."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; floats with 3 decimals, None as n/a."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
