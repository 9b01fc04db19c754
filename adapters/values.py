"""JSON value semantics shared by the matcher, the update applier and the SQL compiler.

Values of different JSON types never compare equal ("1" != 1, True != 1), while
int and float are one number type (1 == 1.0). Ordering across types follows Mongo:
null < number < string < object < array < boolean.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

TypeClass = Literal["null", "number", "string", "object", "array", "bool"]

_RANK: dict[TypeClass, int] = {"null": 0, "number": 1, "string": 2, "object": 3, "array": 4, "bool": 5}


class _Missing:
    """Sentinel for an absent field (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def type_class(value: Any) -> TypeClass:
    """The JSON type of a value; raises TypeError for non-JSON values."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(a: Any, b: Any) -> bool:
    """JSON equality: same type class and equal value (numbers compare numerically)."""
    ca, cb = type_class(a), type_class(b)
    if ca != cb:
        return False
    if ca == "null":
        return True
    if ca == "object":
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if ca == "array":
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def compare(a: Any, b: Any) -> int:
    """Total order over JSON values (Mongo's cross-type order); -1, 0 or 1."""
    ca, cb = type_class(a), type_class(b)
    if ca != cb:
        return -1 if _RANK[ca] < _RANK[cb] else 1
    if ca in ("number", "string", "bool"):
        return -1 if a < b else (1 if a > b else 0)
    if ca == "array":
        for x, y in zip(a, b, strict=False):
            c = compare(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if ca == "object":
        return _compare_objects(a, b)
    return 0


def _compare_objects(a: dict[str, Any], b: dict[str, Any]) -> int:
    for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
        if ka != kb:
            return -1 if ka < kb else 1
        c = compare(va, vb)
        if c:
            return c
    return (len(a) > len(b)) - (len(a) < len(b))


def finite(value: float) -> bool:
    return math.isfinite(value)


def iso_now() -> str:
    """Current UTC time as the ISO-8601 string every adapter stores for dates."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
