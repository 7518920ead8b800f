"""Values from a request, parsed with bounds: every number a client sends is checked for its type and range
before anything is computed from it, and refused, never rounded or clamped, with an `EditorError` whose
message names the value.

JSON bodies are parsed under the limits of `draggan.files.parse_json` (size, containers, values, depth), so
an integer of 10^400, one of 5,000 digits or lists nested 100,000 deep are one-line 400s, not crashes.
"""

from __future__ import annotations

import math
import re
from typing import Any

from draggan.apps.editor.errors import EditorError
from draggan.files import FileFormatError, parse_json
from draggan.limits import MAX_POINTS

MAX_COORDINATE = 1e6  # |x| and |y| of a point as sent (an image is at most a few thousand pixels wide)


def megabytes(n: int) -> str:
    return f"{n / 2**20:.3g} MB"


def shown(value: Any) -> str:
    """`value` as a message may quote it: at most 40 characters (a 5,000-digit number is not repeated back)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"a {len(str(abs(value))) if abs(value) < 10**4000 else 'several thousand'}-digit integer"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def json_object(raw: bytes, *, max_bytes: int) -> dict:
    """The JSON object of a request body (empty: {}), under the JSON limits; else an EditorError."""
    try:
        value = parse_json(raw or b"{}", source="the request", max_bytes=max_bytes)
    except FileFormatError as e:
        raise EditorError(str(e)) from None
    if not isinstance(value, dict):
        raise EditorError("the request must be a JSON object")
    return value


def whole_number(value: Any, name: str, low: int, high: int) -> int:
    """`value` (a JSON number or a query string) as a whole number in [low, high], else an EditorError:
    1.5, 1e400, true and 'abc' are refused, never rounded."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,30}\s*", value):
        number = int(value)
    else:
        raise EditorError(f"{name} must be a whole number, got {shown(value)}")
    if not low <= number <= high:
        raise EditorError(f"{name} must be in [{low}, {high}], got {shown(number)}")
    return number


def real_number(value: Any, name: str, low: float, high: float) -> float:
    """`value` (a JSON number or a query string) as a finite number in [low, high], else an EditorError."""
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    except (ValueError, OverflowError):  # 'abc'; an integer of 400 digits
        number = None
    if number is None or not math.isfinite(number):
        raise EditorError(f"{name} must be a number, got {shown(value)}")
    if not low <= number <= high:
        raise EditorError(f"{name} must be in [{low:g}, {high:g}], got {number:g}")
    return number


def point_pairs(value: Any, name: str) -> list[tuple[float, float]]:
    """`value` as a list of at most MAX_POINTS (x, y) pairs of numbers of at most MAX_COORDINATE; else an
    EditorError (a list of 10,000 pairs is refused by its length before any pair is read)."""
    if not isinstance(value, (list, tuple)):  # JSON gives lists; Python callers may pass tuples
        raise EditorError(f"{name} must be a list of [x, y] pairs, got {shown(value)}")
    if len(value) > MAX_POINTS:
        raise EditorError(f"{name} (handle/target pairs): {len(value)} given, at most {MAX_POINTS} are accepted")
    points = []
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise EditorError(f"{name}[{i}] must be an [x, y] pair, got {shown(pair)}")
        xy = []
        for v in pair:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_COORDINATE
            if not ok or not math.isfinite(v):
                raise EditorError(f"{name}[{i}] must hold two finite numbers of at most {MAX_COORDINATE:g} in size, "
                                  f"got {shown(v)}")
            xy.append(float(v))
        points.append((xy[0], xy[1]))
    return points
