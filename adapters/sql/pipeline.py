"""Compile a validated aggregation pipeline into one SQL query (nested where needed).

Supported: $match, $group (_id: null | "$f" | {k: "$f"}; $sum $avg $min $max, $count
as $sum: 1), $sort, $skip, $limit, and $project as the last stage (applied to the
rows in Python). Accumulators consider numbers only; other values are ignored.
"""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from adapters.base import Doc
from adapters.limits import result_number
from adapters.names import check_field
from adapters.sql.compiler import Compiler, Params, Resolver
from adapters.sql.dialect import Dialect
from adapters.sql.layout import Layout, Ref, decode_value
from common.errors import InvalidQuery


@dataclass(slots=True)
class _Rel:
    source: str
    select: str
    resolve: Resolver
    where: list[str] = field(default_factory=list)
    order: str = ""
    limit: int | None = None
    skip: int = 0
    keys: list[tuple[str | None, Ref]] | None = None
    """For grouped relations: (sub-key name or None for a plain key, Ref of its column)."""
    outputs: list[str] = field(default_factory=list)
    int_counts: set[str] = field(default_factory=set)
    """Outputs that are `$sum` of an integer constant: an integer unless it overflowed."""


@dataclass(slots=True)
class Plan:
    """A compiled pipeline: run `sql` with `params`, then `shape` each row."""

    sql: str
    params: list[Any]
    grouped: bool
    keys: list[tuple[str | None, Ref]]
    outputs: list[str]
    int_counts: set[str]
    project: dict[str, int] | None


def value_expr(d: Dialect, ref: Ref) -> str:
    """The value of a field as one SQL column (JSON text/jsonb for JSON refs; null -> NULL)."""
    if ref.kind != "json":
        return ref.expr
    parts = list(ref.parts)
    return f"(CASE WHEN {d.j_is(ref.expr, parts, 'null')} THEN NULL ELSE {d.j_raw(ref.expr, parts)} END)"


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class PipelineCompiler:
    def __init__(self, dialect: Dialect, layout: Layout) -> None:
        self.d = dialect
        self.layout = layout
        self.params = Params(dialect)
        self._n = 0

    def _sql(self, rel: _Rel) -> str:
        where = " WHERE " + " AND ".join(rel.where) if rel.where else ""
        return f"SELECT {rel.select} FROM {rel.source}{where}{rel.order}{self.d.limit(rel.limit, rel.skip)}"

    def _wrap(self, rel: _Rel) -> _Rel:
        self._n += 1
        return replace(rel, source=f"({self._sql(rel)}) AS t{self._n}", select="*", where=[], limit=None, skip=0)

    def compile(self, pipeline: list[Doc]) -> Plan:
        d, layout = self.d, self.layout
        rel = _Rel(layout.sql, ", ".join(d.q(c) for c in layout.columns()), lambda p: layout.resolve(d, p))
        project: dict[str, int] | None = None
        for stage in pipeline:
            (name, arg), = stage.items()
            if project is not None:
                raise InvalidQuery("on SQL databases $project must be the last stage")
            if name in ("$match", "$sort") and (rel.limit is not None or rel.skip):
                rel = self._wrap(rel)
            if name == "$match":
                rel.where.append(Compiler(d, rel.resolve, self.params).where(arg))
            elif name == "$sort":
                rel.order = Compiler(d, rel.resolve, self.params).order_by(arg)
            elif name == "$skip":
                if rel.limit is not None:
                    rel = self._wrap(rel)
                rel.skip += arg
            elif name == "$limit":
                rel.limit = arg if rel.limit is None else min(rel.limit, arg)
            elif name == "$group":
                rel = self._group(rel, arg)
            else:
                project = arg
        return Plan(
            self._sql(rel), self.params.values, rel.keys is not None, rel.keys or [], rel.outputs, rel.int_counts,
            project,
        )

    def _numeric(self, ref: Ref) -> str:
        if ref.kind == "json":
            parts = list(ref.parts)
            return f"(CASE WHEN {self.d.j_is(ref.expr, parts, 'number')} THEN {self.d.j_num(ref.expr, parts)} END)"
        return ref.expr if ref.kind in ("integer", "float", "number") else "NULL"

    def _group(self, rel: _Rel, spec: Doc) -> _Rel:
        if rel.limit is not None or rel.skip:
            rel = self._wrap(rel)
        key = spec["_id"]
        sub_keys: list[tuple[str | None, str]] = (
            [] if key is None else [(None, key[1:])] if isinstance(key, str) else [(k, v[1:]) for k, v in key.items()]
        )
        cols: list[str] = []
        keys: list[tuple[str | None, Ref]] = []
        for n, (sub, path) in enumerate(sub_keys):
            ref = rel.resolve(path)
            expr = value_expr(self.d, ref)
            alias = self.d.q(f"k{n}")
            cols.append(f"{expr} AS {alias}")
            keys.append((sub, Ref(alias, ref.kind)))
        outputs = [name for name in spec if name != "_id"]
        int_counts: set[str] = set()
        for n, name in enumerate(outputs):
            (op, arg), = spec[name].items()
            if op == "$sum" and not isinstance(arg, str):
                expr = f"(COUNT(*) * {arg!r})"  # validated: an int or a finite float
                if isinstance(arg, int):
                    int_counts.add(name)
            else:
                num = self._numeric(rel.resolve(arg[1:]))
                expr = {"$sum": f"COALESCE(SUM({num}), 0)", "$avg": f"AVG({num})",
                        "$min": f"MIN({num})", "$max": f"MAX({num})"}[op]
            cols.append(f"{expr} AS {self.d.q(f'a{n}')}")
        where = " WHERE " + " AND ".join(rel.where) if rel.where else ""
        group_by = " GROUP BY " + ", ".join(self.d.q(f"k{n}") for n in range(len(keys))) if keys else ""
        if not keys:
            group_by = " HAVING COUNT(*) > 0"
            cols.append("COUNT(*) AS " + self.d.q("n_"))
        self._n += 1
        source = f"(SELECT {', '.join(cols)} FROM {rel.source}{where}{group_by}) AS t{self._n}"
        by_name = {name: Ref(self.d.q(f"a{n}"), "number") for n, name in enumerate(outputs)}

        def resolve(path: str) -> Ref:
            parts = check_field(path)
            if parts[0] in by_name and len(parts) == 1:
                return by_name[parts[0]]
            if parts[0] == "_id":
                for sub, ref in keys:
                    if sub is None:
                        return replace(ref, parts=tuple(parts[1:])) if ref.kind == "json" or len(parts) == 1 \
                            else Ref("NULL", "missing")
                    if len(parts) >= 2 and parts[1] == sub:
                        if ref.kind == "json" or len(parts) == 2:
                            return replace(ref, parts=tuple(parts[2:]))
            return Ref("NULL", "missing")

        return _Rel(source, "*", resolve, keys=keys, outputs=outputs, int_counts=int_counts)


def shape_group(plan: Plan, row: tuple[Any, ...]) -> Doc:
    """A grouped row as {"_id": key, output: value, ...}."""
    values = [
        _number(decode_value(ref.kind, v)) if v is not None else None
        for (_, ref), v in zip(plan.keys, row, strict=False)
    ]
    if not plan.keys:
        key: Any = None
    elif plan.keys[0][0] is None:
        key = values[0]
    else:
        key = {sub: v for (sub, _), v in zip(plan.keys, values, strict=True)}
    doc: Doc = {"_id": key}
    aggs = row[len(plan.keys):]
    for name, value in zip(plan.outputs, aggs, strict=False):
        number = _number(value)
        if name in plan.int_counts and isinstance(number, float):  # SQLite turns an overflowing product to REAL
            number = float("inf")
        doc[name] = result_number(number, f"$group output {name!r}")
    return doc
