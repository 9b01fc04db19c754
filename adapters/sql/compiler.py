"""Compile a validated find and sort into SQL over `Ref`s, with bound parameters only.

Every predicate is NULL-free (TRUE or FALSE, never NULL) so that `$ne`/`$nin`
can be written as NOT of `$eq`/`$in` and match missing fields, as in Mongo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.base import Doc
from adapters.sql import indexes
from adapters.sql.dialect import Dialect
from adapters.sql.layout import Ref, parse_datetime
from adapters.values import TypeClass, type_class

Resolver = Callable[[str], Ref]
SET_MIN = 16
"""From this many distinct values of one type on, `$in` is a set test with one parameter (an array
or a JSON list) instead of a placeholder per value: the planner sees one expression, whatever the
length of the list (10,000 OR-ed tests kept PostgreSQL's planner and JIT busy for minutes)."""
INT64 = 2**63
_OPS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COLUMN_CLASS: dict[str, TypeClass] = {
    "string": "string", "integer": "number", "float": "number", "number": "number",
    "boolean": "bool", "datetime": "string",
}


def _distinct(values: list[Any]) -> list[Any]:
    """`values` without repeats (by JSON equality: 1 and 1.0 are one value, 1 and True are two)."""
    seen: set[tuple[str, Any]] = set()
    out = []
    for v in values:
        key = (type_class(v), v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


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
        if op in ("$eq", "$in"):
            # On an indexed JSON path, a test its index answers goes first (its parameters too, for `?`
            # placeholders); the exact test implies it, so the result is the same.
            pre = indexes.prefilter(self.d, ref, op, arg, self.p.add)
            test = self._eq(ref, arg) if op == "$eq" else self._in(ref, arg)
            return test if pre is None else f"({pre} AND {test})"
        if op == "$nin":
            return f"NOT COALESCE({self._in(ref, arg)}, FALSE)"
        return self._compare(ref, _OPS[op], arg)

    def _in(self, ref: Ref, values: list[Any]) -> str:
        values = _distinct(values)
        if not values:
            return "FALSE"
        if ref.kind == "missing":
            return "TRUE" if any(v is None for v in values) else "FALSE"
        cls = _COLUMN_CLASS.get(ref.kind)
        if cls is not None and len(values) > 1:
            same = [v for v in values if v is not None and type_class(v) == cls]
            terms = []
            if same:
                terms.append(self._member(ref, same))
            if any(v is None for v in values):
                terms.append(f"({ref.expr} IS NULL)")
            return "(" + " OR ".join(terms) + ")" if terms else "FALSE"
        if ref.kind == "json" and len(values) >= SET_MIN:
            return self._json_in(ref, values)
        return "(" + " OR ".join(self._eq(ref, v) for v in values) + ")"

    def _member(self, ref: Ref, values: list[Any]) -> str:
        """A typed column is one of `values` (all of the column's type class)."""
        if len(values) < SET_MIN:
            marks = ", ".join(self._mark(ref, v) for v in values)
            return f"({ref.expr} IN ({marks}))"
        if ref.kind == "integer":  # only integral numbers can equal an integer column
            values = [int(v) for v in values if float(v).is_integer() and -INT64 <= v < INT64]
            if not values:
                return "FALSE"
        elif ref.kind == "datetime":
            values = [parse_datetime(self.d, v) for v in values]
        elif ref.kind in ("float", "number"):
            values = [self.d.number(v) for v in values]
        return self.d.in_set(ref.expr, ref.kind, values, self.p.add)

    def _json_in(self, ref: Ref, values: list[Any]) -> str:
        """A JSON value is one of many `values`: numbers and strings are each one set test (one
        parameter however many values, which the database answers by hashing or binary search);
        null, true and false, at most three, are tested one by one. Same semantics as `_eq` on each."""
        parts = list(ref.parts)
        numbers = [self.d.number(v) for v in values if type_class(v) == "number"]
        strings = [v for v in values if type_class(v) == "string"]
        terms = [self._eq(ref, v) for v in values if type_class(v) not in ("number", "string")]
        sets: tuple[tuple[TypeClass, Callable[[str, list[str]], str], list[Any]], ...] = (
            ("number", self.d.j_num, numbers), ("string", self.d.j_str, strings))
        for cls, typed, items in sets:
            if items:
                test = self.d.in_set(typed(ref.expr, parts), cls, items, self.p.add)
                terms.append(f"(CASE WHEN {self.d.j_is(ref.expr, parts, cls)} THEN {test} ELSE FALSE END)")
        return "(" + " OR ".join(terms) + ")"

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
            mark = self.p.add(self.d.number(value) if cls == "number" else value)
            return f"(CASE WHEN {test} THEN {typed} {sql_op} {mark} ELSE FALSE END)"
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
            return self.d.num_param(self.p.add(self.d.number(value)))
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
