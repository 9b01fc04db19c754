"""The SQL implementation of `Adapter`, shared by PostgreSQL, MySQL/MariaDB and SQLite."""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Protocol

from adapters.base import Change, Doc, ReadOptions, WriteRequest, WritesAsBatch
from adapters.documents import project
from adapters.limits import check_write_size
from adapters.names import VERSION_FIELD, check_collection, collection_key
from adapters.namespaces import Place, check_namespace, configured, explicit_table, sql_place
from adapters.query import validate_find, validate_options, validate_pipeline, validate_update
from adapters.sql import indexes, writes
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


class TableHook(Protocol):
    async def prepare(self, layout: Layout) -> None:
        """Called the first time a collection's table is seen, before it is used."""


class SqlAdapter(WritesAsBatch):
    """Mongo-style documents over SQL tables (schemaless or typed per collection), for one project:
    its tables live in its namespace (`adapters.namespaces`) unless a collection names its `table`."""

    id_field = "id"

    def __init__(
        self, kind: str, driver: Driver, *, namespace: str, collections: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.kind = kind
        self.driver = driver
        self.d = driver.dialect
        self.namespace = check_namespace(namespace)
        self.collections: dict[str, dict[str, Any]] = dict(collections or {})
        configured(kind, self.collections)  # a bad `fields`/`table` entry is refused now, not on first use
        self._layouts: dict[str, Layout] = {}
        self._ddl = asyncio.Lock()
        self.capture: TableHook | None = None
        """Change capture (`adapters.sql.changelog.SqlCapture`), set by the db worker."""

    async def connect(self) -> None:
        await self.driver.connect()

    async def close(self) -> None:
        await self.driver.close()

    def _config(self, col: str) -> dict[str, Any] | None:
        return configured(self.kind, self.collections).get(collection_key(self.kind, col))

    def place(self, col: str) -> Place:
        """Where `col`'s rows live: the table its `table:` option names, else one in the namespace."""
        check_collection(col)
        config = self._config(col)
        if config is not None and "table" in config:
            return explicit_table(self.kind, config["table"])
        return sql_place(self.kind, self.namespace, col)

    def _sql(self, place: Place) -> str:
        table = self.d.q(place.table)
        return f"{self.d.q(place.schema)}.{table}" if place.schema else table

    async def drop(self, col: str) -> None:
        """Drop a collection's table (admin and test helper; not part of `Adapter`)."""
        place = self.place(col)
        self._layouts.pop(collection_key(self.kind, col), None)
        async with self.driver.transaction() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {self._sql(place)}")

    async def layout(self, col: str, *, create: bool = True) -> Layout | None:
        """How `col` is stored. With `create` (writes) its table, and on PostgreSQL the project's
        schema, is created on first use (DDL runs outside data transactions); without (reads) a
        collection that has no table is None and nothing is created."""
        key = collection_key(self.kind, check_collection(col))
        if key in self._layouts:
            return self._layouts[key]
        if not create:
            async with self.driver.reader() as conn:
                found = await self._discover(conn, col, create=False)
            if found is not None:
                await self._prepare(found)
                await indexes.prepare(self, found)  # the indexes its config declares
                self._layouts[key] = found
            return found
        async with self._ddl:
            if key not in self._layouts:
                try:
                    made = await self._create(col)
                except Conflict:  # two processes created the table (or schema) at once
                    made = await self._create(col)
                await self._prepare(made)
                await indexes.prepare(self, made)
                self._layouts[key] = made
            return self._layouts[key]

    async def _prepare(self, layout: Layout) -> None:
        """Change capture's set-up of a table seen for the first time, before anything uses it."""
        if self.capture is not None:
            await self.capture.prepare(layout)

    async def _create(self, col: str) -> Layout:
        async with self.driver.transaction() as conn:
            layout = await self._discover(conn, col, create=True)
        assert layout is not None
        return layout

    def _virtual(self, col: str) -> Layout:
        """The layout `col` would get on its first write (to validate and compile a read of a
        collection that has no table yet, so it fails or succeeds as it would with one)."""
        config = self._config(col)
        sql = self._sql(self.place(col))
        if config is not None and config.get("fields"):
            return Layout(col, sql, False, declared_fields(config))
        return Layout(col, sql, True)

    async def _discover(self, conn: Conn, col: str, *, create: bool) -> Layout | None:
        config = self._config(col)
        place = self.place(col)
        sql = self._sql(place)
        cols = {c: t for c, t in (await self.driver.table_columns(conn, place.table, place.schema)).items()
                if not indexes.is_index_column(c)}
        if config is not None and config.get("fields"):
            fields = declared_fields(config)
            if not cols:
                if not create:
                    return None
                await self._create_schema(conn, place)
                await conn.execute(create_typed(self.d, sql, fields))
                cols = await self.driver.table_columns(conn, place.table, place.schema)
            return Layout(col, sql, False, fields, VERSION_FIELD in cols)
        if not cols:
            if not create:
                return None
            await self._create_schema(conn, place)
            await conn.execute(self.d.create_schemaless(sql))
            return Layout(col, sql, True)
        if set(cols) == SCHEMALESS_COLUMNS:
            return Layout(col, sql, True)
        if "id" not in cols:
            raise InvalidQuery(f"table {place.table!r} of collection {col!r} has no 'id' column")
        fields = {"id": field_type(cols["id"])}
        fields.update({c: field_type(t) for c, t in cols.items() if c not in ("id", VERSION_FIELD)})
        return Layout(col, sql, False, fields, VERSION_FIELD in cols)

    async def _create_schema(self, conn: Conn, place: Place) -> None:
        if place.own_schema and place.schema is not None:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.d.q(place.schema)}")

    def _compiler(self, layout: Layout) -> Compiler:
        return Compiler(self.d, lambda p: layout.resolve(self.d, p), Params(self.d))

    async def read(self, col: str, op: str, find: Doc, options: ReadOptions) -> Any:
        if op not in READ_OPS:
            raise InvalidQuery(f"invalid read op {op!r}")
        o = options
        validate_options(o.select, o.sort, o.skip, o.limit, o.distinct, id_field=self.id_field)
        if op == "distinct" and not o.distinct:
            raise InvalidQuery("read op distinct needs options.distinct")
        find = validate_find(find)
        layout = await self.layout(col, create=False)
        c = self._compiler(layout or self._virtual(col))
        where = c.where(find)
        order = c.order_by(o.sort)
        if layout is None:  # no table: nothing to read, and no table is made for a read
            if op == "one":
                raise NotFound("no document matches the find")
            return 0 if op == "count" else []
        table = layout.sql
        if op == "count":
            async with self.driver.reader() as conn:
                rows = await conn.fetch(f"SELECT COUNT(*) FROM {table} WHERE {where}", c.p.values)
            return int(rows[0][0])
        if op == "distinct":
            assert o.distinct is not None
            return await self._distinct(layout, c, where, o.distinct)
        cols = ", ".join(self.d.q(n) for n in layout.columns())
        limit = 1 if op == "one" else o.limit
        sql = f"SELECT {cols} FROM {table} WHERE {where}{order}{self.d.limit(limit, o.skip)}"
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
        sql = f"SELECT DISTINCT {expr} FROM {layout.sql} WHERE {where}"
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
        layout = await self.layout(col, create=False)
        plan = PipelineCompiler(self.d, layout or self._virtual(col)).compile(stages)
        rows: list[tuple[Any, ...]] = []
        if layout is not None:
            async with self.driver.reader() as conn:
                rows = await conn.fetch(plan.sql, plan.params)
        if plan.grouped:
            docs = [project(shape_group(plan, row), plan.project, "_id") for row in rows]
        else:
            docs = [project(layout.decode(self.d, row)[0], plan.project, self.id_field)
                    for row in rows if layout is not None]
        if op == "one":
            if not docs:
                raise NotFound("the pipeline returned no document")
            return docs[0]
        return docs

    async def batch(self, reqs: list[WriteRequest]) -> list[Change]:
        check_write_size(reqs)
        checked = [self._check(req) for req in reqs]
        # Only what can insert makes a table: an update or delete of a collection with none matches nothing.
        creating = {req.col for req in checked if req.type == "create" or req.op == "upsert"}
        layouts = {req.col: await self.layout(req.col, create=req.col in creating) for req in checked}
        first = checked[0] if len(checked) == 1 else None
        if first is not None and first.type == "create" and isinstance(first.doc, list) and len(first.doc) == 1:
            layout = layouts[first.col]
            assert layout is not None
            return await self._insert_one(layout, first.col, first.doc[0])
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

    async def _write(self, conn: Conn, layout: Layout | None, req: WriteRequest) -> list[Change]:
        if layout is None:  # an update or delete of a collection that has no table
            self._compiler(self._virtual(req.col)).where(req.find)  # refused as it would be with a table
            if req.op == "one":
                raise NotFound("no document matches the find")
            return []
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
