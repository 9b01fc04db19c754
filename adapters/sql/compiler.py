"""Compile a validated find and sort into SQL over `Ref`s, with bound parameters only.

Every predicate is NULL-free (TRUE or FALSE, never NULL) so that `$ne`/`$nin`
can be written as NOT of `$eq`/`$in` and match missing fields, as in Mongo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.base import Doc
from adapters.sql.dialect import Dialect
from adapters.sql.layout import Ref, parse_datetime
from adapters.values import TypeClass, type_class

Resolver = Callable[[str], Ref]
_OPS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COLUMN_CLASS: dict[str, TypeClass] = {
    "string": "string", "integer": "number", "float": "number", "number": "number",
    "boolean": "bool", "datetime": "string",
}


class Params:
    """Collects bound values and hands out the dialect's placeholders."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return self.d.placeholder(len(self.values))


class Compiler:
    """Turns find/sort documents into SQL fragments for one dialect and one resolver."""

    def __init__(self, dialect: Dialect, resolve: Resolver, params: Params) -> None:
        self.d = dialect
        self.resolve = resolve
        self.p = params

    def where(self, find: Doc) -> str:
        """SQL for a validated find ("TRUE" when empty)."""
        terms: list[str] = []
        for key, cond in find.items():
            if key == "$or":
                terms.append("(" + " OR ".join(self.where(sub) for sub in cond) + ")")
            elif key == "$and":
                terms.append("(" + " AND ".join(self.where(sub) for sub in cond) + ")")
            else:
                ref = self.resolve(key)
                terms.extend(self._condition(ref, op, arg) for op, arg in cond.items())
        return "(" + " AND ".join(terms) + ")" if terms else "TRUE"

    def _condition(self, ref: Ref, op: str, arg: Any) -> str:
        # Positive tests are plain `col = $1` / `col IN (...)` so indexes apply; a negation wraps its
        # test in COALESCE because NULL (a missing field) must count as "not equal".
        if op == "$ne":
            return f"NOT COALESCE({self._eq(ref, arg)}, FALSE)"
        if op == "$in":
            return self._in(ref, arg)
        if op == "$nin":
            return f"NOT COALESCE({self._in(ref, arg)}, FALSE)"
        if op == "$eq":
            return self._eq(ref, arg)
        return self._compare(ref, _OPS[op], arg)

    def _in(self, ref: Ref, values: list[Any]) -> str:
        if not values:
            return "FALSE"
        cls = _COLUMN_CLASS.get(ref.kind)
        if cls is not None and len(values) > 1:
            same = [v for v in values if v is not None and type_class(v) == cls]
            terms = []
            if same:
                marks = ", ".join(self._mark(ref, v) for v in same)
                terms.append(f"({ref.expr} IN ({marks}))")
            if any(v is None for v in values):
                terms.append(f"({ref.expr} IS NULL)")
            return "(" + " OR ".join(terms) + ")" if terms else "FALSE"
        return "(" + " OR ".join(self._eq(ref, v) for v in values) + ")"

    def _eq(self, ref: Ref, value: Any) -> str:
        if ref.kind == "missing":
            return "TRUE" if value is None else "FALSE"
        if ref.kind == "json":
            parts = list(ref.parts)
            if value is None:
                return self.d.j_is(ref.expr, parts, "null")
            if isinstance(value, bool):
                return self.d.j_bool_is(ref.expr, parts, value)
        if value is None:
            return f"({ref.expr} IS NULL)"
        return self._compare(ref, "=", value)

    def _compare(self, ref: Ref, sql_op: str, value: Any) -> str:
        cls = type_class(value)
        if ref.kind == "missing":
            return "FALSE"
        if ref.kind == "json":
            parts = list(ref.parts)
            typed = self.d.j_num(ref.expr, parts) if cls == "number" else self.d.j_str(ref.expr, parts)
            test = self.d.j_is(ref.expr, parts, cls)
            return f"(CASE WHEN {test} THEN {typed} {sql_op} {self.p.add(value)} ELSE FALSE END)"
        if _COLUMN_CLASS.get(ref.kind) != cls:
            return "FALSE"
        if sql_op == "=":  # equality needs no collation override (deterministic collations compare bytes)
            return f"({ref.expr} = {self._mark(ref, value)})"
        return f"COALESCE({self._col(ref)} {sql_op} {self._mark(ref, value)}, FALSE)"

    def _col(self, ref: Ref) -> str:
        return self.d.string_expr(ref.expr) if ref.kind == "string" else ref.expr

    def _mark(self, ref: Ref, value: Any) -> str:
        if ref.kind == "datetime":
            return self.p.add(parse_datetime(self.d, value))
        if ref.kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return self.p.add(value)  # the column's own type: an index on it applies
        if _COLUMN_CLASS.get(ref.kind) == "number":
            return self.d.num_param(self.p.add(value))
        return self.p.add(value)

    def sort_keys(self, ref: Ref, direction: int) -> list[str]:
        """ORDER BY terms for one field; JSON values sort by Mongo's cross-type order."""
        suffix = " ASC" + self.d.nulls_first if direction > 0 else " DESC" + self.d.nulls_last
        if ref.kind == "missing":
            return []
        if ref.kind != "json":
            return [self._col(ref) + suffix]
        parts = list(ref.parts)
        is_ = self.d.j_is
        order: tuple[TypeClass, ...] = ("null", "number", "string", "object", "array", "bool")
        rank = " ".join(f"WHEN {is_(ref.expr, parts, cls)} THEN {n}" for n, cls in enumerate(order))
        return [
            f"(CASE {rank} END){suffix}",
            f"(CASE WHEN {is_(ref.expr, parts, 'number')} THEN {self.d.j_num(ref.expr, parts)} END){suffix}",
            f"(CASE WHEN {is_(ref.expr, parts, 'string')} THEN {self.d.j_str(ref.expr, parts)} END){suffix}",
            f"(CASE WHEN {self.d.j_bool_is(ref.expr, parts, True)} THEN 1 ELSE 0 END){suffix}",
        ]

    def order_by(self, sort: dict[str, int] | None) -> str:
        """An ORDER BY clause (empty string when there is no sort)."""
        terms = [t for key, direction in (sort or {}).items() for t in self.sort_keys(self.resolve(key), direction)]
        return " ORDER BY " + ", ".join(terms) if terms else ""
