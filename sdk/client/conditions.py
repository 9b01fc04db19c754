"""Conditions and the where → find translation, exactly as space-api builds the Mongo-style `find`.

    cond("age", ">=", 18)                    → {"age": {"$gte": 18}}
    and_(cond("n", ">", 1), cond("n", "<", 9)) → {"n": {"$gt": 1, "$lt": 9}}
    or_(cond("a", "==", 1), cond("b", "==", 2)) → {"$or": [{"a": 1}, {"b": 2}]}

`where(a, b)` on a builder means `and_(a, b)`; `where()` means `{}`. A plain mapping is accepted
wherever a condition is and is taken as a ready-made find.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
"""A JSON document."""

OPERATORS: dict[str, str | None] = {
    "==": None, "!=": "$ne", ">": "$gt", "<": "$lt", ">=": "$gte", "<=": "$lte", "in": "$in", "notIn": "$nin",
}
"""space-api's condition operators and the find operator each becomes (`==` is plain equality)."""


@dataclass(frozen=True)
class Cond:
    """One comparison: `field op value`. Build it with `cond()`."""

    f1: str
    op: str
    f2: Any


@dataclass(frozen=True)
class And:
    """All of the clauses. Build it with `and_()`."""

    clauses: tuple[Condition | Mapping[str, Any], ...]


@dataclass(frozen=True)
class Or:
    """Any of the clauses. Build it with `or_()`."""

    clauses: tuple[Condition | Mapping[str, Any], ...]


Condition = Cond | And | Or
Where = Condition | Mapping[str, Any]
"""What `where(...)` takes: conditions, or a find object as the server takes it."""


def cond(f1: str, op: str, f2: Any) -> Cond:
    """`cond("age", ">=", 18)`. Operators: `== != > < >= <= in notIn`; dotted field paths work."""
    if op not in OPERATORS:
        raise ValueError(f"cond: unknown operator {op!r} (use one of {' '.join(OPERATORS)})")
    if not isinstance(f1, str) or not f1:
        raise ValueError("cond: the field must be a non-empty string")
    if op in ("in", "notIn") and not isinstance(f2, list | tuple | set | frozenset):
        raise ValueError(f"cond: {op!r} needs a list of values")
    return Cond(f1, op, f2)


def and_(*clauses: Where) -> And:
    """All of the conditions (one find object; operator maps on one field merge)."""
    return And(tuple(clauses))


def or_(*clauses: Where) -> Or:
    """Any of the conditions: `{"$or": [...]}`."""
    return Or(tuple(clauses))


def _is_operator_map(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(k, str) and k.startswith("$") for k in value)


def _merge(into: Doc, extra: Doc) -> Doc:
    """`extra` and-ed into `into`: operator maps on one field merge, two `$or`s become an `$and`."""
    for key, value in extra.items():
        if key not in into:
            into[key] = value
        elif key == "$or":
            into["$and"] = [*into.get("$and", []), {"$or": into.pop("$or")}, {"$or": value}]
        elif key == "$and":
            into["$and"] = [*into["$and"], *value]
        else:
            a = into[key] if _is_operator_map(into[key]) else {"$eq": into[key]}
            b = value if _is_operator_map(value) else {"$eq": value}
            into[key] = {**a, **b}
    return into


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | set | frozenset) else value


def generate_find(condition: Where) -> Doc:
    """The find object for one condition (see the module docstring)."""
    if isinstance(condition, Cond):
        operator = OPERATORS[condition.op]
        value = _value(condition.f2)
        return {condition.f1: value} if operator is None else {condition.f1: {operator: value}}
    if isinstance(condition, And):
        out: Doc = {}
        for clause in condition.clauses:
            _merge(out, generate_find(clause))
        return out
    if isinstance(condition, Or):
        return {"$or": [generate_find(c) for c in condition.clauses]}
    if isinstance(condition, Mapping):
        return copy.deepcopy(dict(condition))
    raise TypeError(f"not a condition: {condition!r} (use cond(), and_(), or_() or a find mapping)")


def where_to_find(conditions: tuple[Where, ...]) -> Doc:
    """`where(a)` → find of a; `where(a, b)` → find of `and_(a, b)`; `where()` → `{}`."""
    if len(conditions) == 1:
        return generate_find(conditions[0])
    return generate_find(And(conditions))
