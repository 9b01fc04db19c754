"""Typed comparison for the ``match`` rule: a table of (type, eval) -> comparison.

Values are never coerced: ``"1"`` is not a number, ``1`` is not a bool, ``True`` is not ``1``.
A value of the wrong type makes the comparison fail (it never raises for user data).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

EQUALITY = ("==", "!=", "in", "notIn")
ORDERING = ("<", "<=", ">", ">=")
OPS: dict[str, tuple[str, ...]] = {
    "string": EQUALITY,
    "number": EQUALITY + ORDERING,
    "bool": EQUALITY,
    "date": EQUALITY + ORDERING,
}
ALL_OPS = EQUALITY + ORDERING

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class Mismatch(Exception):
    """A value does not have the declared type (reported as "Incorrect rule field type")."""


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Mismatch


def _number(value: Any) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        return value
    raise Mismatch


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise Mismatch


def _date(value: Any) -> datetime:
    """ISO-8601 string or epoch seconds (or a YAML date in the config); naive times are UTC."""
    try:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, date):
            parsed = datetime.combine(value, time())
        elif isinstance(value, str):
            text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
            parsed = datetime.fromisoformat(text)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value, tz=UTC)
        else:
            raise Mismatch
    except (ValueError, OverflowError, OSError) as exc:
        raise Mismatch from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "number": _number,
    "bool": _bool,
    "date": _date,
}


def _member(needle: Any, haystack: Any, convert: Callable[[Any], Any]) -> bool:
    if not isinstance(haystack, list):
        raise Mismatch
    for item in haystack:
        try:
            if convert(item) == needle:
                return True
        except Mismatch:
            continue  # an item of another type is simply not equal
    return False


def compare(kind: str, op: str, f1: Any, f2: Any) -> bool:
    """Compare two resolved values as ``kind`` with ``op``.

    Raises KeyError for an unknown type/op pair (a config error) and Mismatch for a value of the
    wrong type. For ``in``/``notIn`` f2 must be a list; its items of other types never match.
    """
    if op not in OPS[kind]:
        raise KeyError(f"eval {op!r} is not supported for type {kind!r}")
    convert = _CONVERT[kind]
    left = convert(f1)
    if op == "in":
        return _member(left, f2, convert)
    if op == "notIn":
        return not _member(left, f2, convert)
    return _COMPARE[op](left, convert(f2))
