"""The SQL implementation of `Adapter`, shared by PostgreSQL, MySQL/MariaDB and SQLite."""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from adapters.base import Change, Doc, ReadOptions, WriteRequest, WritesAsBatch
from adapters.documents import project
from adapters.names import VERSION_FIELD, check_collection
from adapters.query import validate_find, validate_options, validate_pipeline, validate_update
from adapters.sql import writes
from adapters.sql.compiler import Compiler, Params
from adapters.sql.driver import Conn, Driver
from adapters.sql.layout import (
    SCHEMALESS_COLUMNS,
    Layout,
    create_typed,
    declared_fields,
    decode_value,
    field_type,
)
from adapters.sql.pipeline import PipelineCompiler, shape_group, value_expr
from adapters.values import compare, equal
from common.errors import Conflict, InvalidQuery, NotFound

READ_OPS = ("one", "all", "count", "distinct")


class SqlAdapter(WritesAsBatch):
    """Mongo-style documents over SQL tables (schemaless or typed per collection)."""

    id_field = "id"

    def __init__(self, kind: str, driver: Driver, *, collections: dict[str, dict[str, Any]] | None = None) -> None:
        self.kind = kind
        self.driver = driver
        self.d = driver.dialect
        self.collections = {check_collection(k): v for k, v in (collections or {}).items()}
        self._layouts: dict[str, Layout] = {}
        self._ddl = asyncio.Lock()

    async def connect(self) -> None:
        await self.driver.connect()

    async def close(self) -> None:
        await self.driver.close()

    async def drop(self, col: str) -> None:
        """Drop a collection's table (admin and test helper; not part of `Adapter`)."""
        check_collection(col)
        self._layouts.pop(col, None)
        async with self.driver.transaction() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self.d.q(col)}")

    async def layout(self, col: str) -> Layout:
        """How `col` is stored; the table is created on first use (DDL runs outside data transactions)."""
        check_collection(col)
        if col in self._layouts:
            return self._layouts[col]
        async with self._ddl:
            if col not in self._layouts:
                try:
                    self._layouts[col] = await self._discover(col)
                except Conflict:  # two processes created the table at once
                    self._layouts[col] = await self._discover(col)
            return self._layouts[col]

    async def _discover(self, col: str) -> Layout:
        config = self.collections.get(col)
        async with self.driver.transaction() as conn:
            cols = await self.driver.table_columns(conn, col)
            if config is not None and config.get("fields"):
                fields = declared_fields(config)
                if not cols:
                    await conn.execute(create_typed(self.d, col, fields))
                    cols = await self.driver.table_columns(conn, col)
                return Layout(col, False, fields, VERSION_FIELD in cols)
            if not cols:
                await conn.execute(self.d.create_schemaless(col))
                return Layout(col, True)
            if set(cols) == SCHEMALESS_COLUMNS:
                return Layout(col, True)
            if "id" not in cols:
                raise InvalidQuery(f"table {col!r} has no 'id' column")
            fields = {"id": field_type(cols["id"])}
            fields.update({c: field_type(t) for c, t in cols.items() if c not in ("id", VERSION_FIELD)})
            return Layout(col, False, fields, VERSION_FIELD in cols)

    def _compiler(self, layout: Layout) -> Compiler:
        return Compiler(self.d, lambda p: layout.resolve(self.d, p), Params(self.d))

    async def read(self, col: str, op: str, find: Doc, options: ReadOptions) -> Any:
        if op not in READ_OPS:
            raise InvalidQuery(f"invalid read op {op!r}")
        o = options
        validate_options(o.select, o.sort, o.skip, o.limit, o.distinct, id_field=self.id_field)
        find = validate_find(find)
        layout = await self.layout(col)
        c = self._compiler(layout)
        where = c.where(find)
        table = self.d.q(layout.table)
        if op == "count":
            async with self.driver.reader() as conn:
                rows = await conn.fetch(f"SELECT COUNT(*) FROM {table} WHERE {where}", c.p.values)
            return int(rows[0][0])
        if op == "distinct":
            if not o.distinct:
                raise InvalidQuery("read op distinct needs options.distinct")
            return await self._distinct(layout, c, where, o.distinct)
        cols = ", ".join(self.d.q(n) for n in layout.columns())
        limit = 1 if op == "one" else o.limit
        sql = f"SELECT {cols} FROM {table} WHERE {where}{c.order_by(o.sort)}{self.d.limit(limit, o.skip)}"
        async with self.driver.reader() as conn:
            rows = await conn.fetch(sql, c.p.values)
        docs = []
        for row in rows:
            decoded, version = layout.decode(self.d, row)
            doc = project(decoded, o.select, self.id_field)
            if o.versions and version is not None:
                doc[VERSION_FIELD] = version
            docs.append(doc)
        if op == "one":
            if not docs:
                raise NotFound("no document matches the find")
            return docs[0]
        return docs

    async def _distinct(self, layout: Layout, c: Compiler, where: str, field: str) -> list[Any]:
        ref = layout.resolve(self.d, field)
        if ref.kind == "missing":
            return []
        expr = value_expr(self.d, ref)
        sql = f"SELECT DISTINCT {expr} FROM {self.d.q(layout.table)} WHERE {where}"
        async with self.driver.reader() as conn:
            rows = await conn.fetch(sql, c.p.values)
        out: list[Any] = []
        for (raw,) in rows:
            if raw is None:
                continue
            value = decode_value(ref.kind, raw)
            if not any(equal(value, seen) for seen in out):
                out.append(value)
        out.sort(key=_SortKey)
        return out

    async def aggregate(self, col: str, op: str, pipeline: list[Doc]) -> Any:
        if op not in ("one", "all"):
            raise InvalidQuery(f"invalid aggregate op {op!r}")
        stages = validate_pipeline(pipeline, id_field=self.id_field)
        layout = await self.layout(col)
        plan = PipelineCompiler(self.d, layout).compile(stages)
        async with self.driver.reader() as conn:
            rows = await conn.fetch(plan.sql, plan.params)
        if plan.grouped:
            docs = [project(shape_group(plan, row), plan.project, "_id") for row in rows]
        else:
            docs = [project(layout.decode(self.d, row)[0], plan.project, self.id_field) for row in rows]
        if op == "one":
            if not docs:
                raise NotFound("the pipeline returned no document")
            return docs[0]
        return docs

    async def batch(self, reqs: list[WriteRequest]) -> list[Change]:
        checked = [self._check(req) for req in reqs]
        layouts = {req.col: await self.layout(req.col) for req in checked}
        first = checked[0] if len(checked) == 1 else None
        if first is not None and first.type == "create" and isinstance(first.doc, list) and len(first.doc) == 1:
            return await self._insert_one(layouts[first.col], first.col, first.doc[0])
        changes: list[Change] = []
        async with self.driver.transaction() as conn:
            for req in checked:
                changes.extend(replace(c, col=req.col) for c in await self._write(conn, layouts[req.col], req))
        return changes

    async def _insert_one(self, layout: Layout, col: str, doc: Doc) -> list[Change]:
        """The common single insert: one statement, no transaction around it and no look-up first
        (the primary key refuses a duplicate atomically)."""
        try:
            async with self.driver.statement() as conn:
                changes = await writes.insert(conn, self.d, layout, [doc], check_existing=False)
        except Conflict:
            raise Conflict(f"document with id {doc.get('id')} already exists") from None
        return [replace(c, col=col) for c in changes]

    def _check(self, req: WriteRequest) -> WriteRequest:
        """Validate a write before any of a batch runs."""
        check_collection(req.col)
        if req.type == "create":
            if req.op == "one" and isinstance(req.doc, dict):
                return WriteRequest("create", req.col, "all", [req.doc])
            if req.op == "all" and isinstance(req.doc, list):
                return req
            raise InvalidQuery("create needs op 'one' with an object doc or op 'all' with an array")
        ops = ("one", "all", "upsert") if req.type == "update" else ("one", "all")
        if req.type not in ("update", "delete") or req.op not in ops:
            raise InvalidQuery(f"invalid {req.type} op {req.op!r}")
        find = validate_find(req.find)
        update = validate_update(req.update, id_field=self.id_field) if req.type == "update" else None
        return WriteRequest(req.type, req.col, req.op, find=find, update=update)

    async def _write(self, conn: Conn, layout: Layout, req: WriteRequest) -> list[Change]:
        if req.type == "create":
            assert isinstance(req.doc, list)
            return await writes.insert(conn, self.d, layout, req.doc)
        if req.type == "update":
            assert req.update is not None
            return await writes.update(conn, self.d, layout, req.op, req.find, req.update)
        return await writes.delete(conn, self.d, layout, req.op, req.find)


class _SortKey:
    """Sort JSON values with the cross-type order of `adapters.values.compare`."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _SortKey) -> bool:
        return compare(self.v, other.v) < 0
