"""What one request may cost: the bounds every adapter (and the gateway, which validates with the
same functions) holds a request to. Going over one is `InvalidQuery` (400) and changes nothing.

| limit | value | why |
|---|---|---|
| `MAX_IN` | 10,000 | values of one `$in` / `$nin` |
| `MAX_FIND_VALUES` | 10,000 | `$in` / `$nin` values in one find, all operators together |
| `MAX_FIND_CONDITIONS` | 1,000 | conditions (one per operator) and `$or`/`$and` branches in one find |
| `MAX_NESTING` | 16 | `$or`/`$and` nesting |
| `MAX_SORT_KEYS` | 32 | fields of one sort |
| `MAX_FIELDS` | 500 | keys of one select, `$project`, `$group` (`_id` keys and outputs) or update |
| `MAX_STAGES` | 32 | stages of one pipeline |
| `MAX_SKIP_LIMIT` | 2^53 | `skip` / `limit` / `$skip` / `$limit` (0 ≤ n) |
| `MAX_DOC_DEPTH` | 30 | levels of a stored document (itself 1, each object or array inside one more) |
| `MAX_DOCS` | 10,000 | documents of one create |
| `MAX_BATCH` | 100 | requests of one batch |
| 64-bit | ±2^63 | integers in documents, finds, updates (`$inc`, `$mul` results) and aggregation results (`$sum`) |
"""

from __future__ import annotations

import math
from typing import Any

from common.errors import InvalidQuery

MAX_IN = 10_000
MAX_FIND_VALUES = 10_000
MAX_FIND_CONDITIONS = 1_000
MAX_NESTING = 16
MAX_SORT_KEYS = 32
MAX_FIELDS = 500
MAX_STAGES = 32
MAX_SKIP_LIMIT = 2**53
MAX_DOC_DEPTH = 30
MAX_DOCS = 10_000
MAX_BATCH = 100
INT64 = 2**63


def check_count(n: int, most: int, what: str) -> None:
    if n > most:
        raise InvalidQuery(f"too many {what}: {n} (at most {most})")


def check_skip_limit(name: str, n: Any, *, least: int = 0) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < least or n > MAX_SKIP_LIMIT:
        raise InvalidQuery(f"{name} must be an integer from {least} to 2^53")


def check_number(value: Any, where: str) -> None:
    """A number must fit a 64-bit integer (ints) or be finite (floats)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise InvalidQuery(f"integer out of 64-bit range in {where}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidQuery(f"non-finite number in {where}")


def check_nesting(value: Any, where: str, level: int = 0) -> None:
    """`value` (a document: level 1) nests at most `MAX_DOC_DEPTH` levels and holds no number beyond
    64 bits; values of other types are not looked at."""
    if isinstance(value, dict | list):
        if level >= MAX_DOC_DEPTH:
            raise InvalidQuery(f"{where} is nested deeper than {MAX_DOC_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            check_nesting(item, where, level + 1)
    elif isinstance(value, int | float):
        check_number(value, where)


def result_number(value: Any, where: str) -> Any:
    """An aggregation result, refused when it overflowed (e.g. a `$sum` beyond 64-bit integers)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            check_number(value, where)
        except InvalidQuery:
            raise InvalidQuery(f"{where} overflows: the result is beyond 64-bit integers or not finite") from None
    return value


class FindBudget:
    """Counts what one find holds while it is validated."""

    __slots__ = ("conditions", "values")

    def __init__(self) -> None:
        self.conditions = 0
        self.values = 0

    def condition(self, n: int = 1) -> None:
        self.conditions += n
        check_count(self.conditions, MAX_FIND_CONDITIONS, "conditions in one find")

    def in_values(self, n: int) -> None:
        self.values += n
        check_count(self.values, MAX_FIND_VALUES, "$in/$nin values in one find")


def check_write_size(reqs: list[Any]) -> None:
    """A batch holds at most `MAX_BATCH` requests, a create at most `MAX_DOCS` documents."""
    check_count(len(reqs), MAX_BATCH, "requests in one batch")
    for req in reqs:
        if isinstance(getattr(req, "doc", None), list):
            check_count(len(req.doc), MAX_DOCS, "documents in one create")
