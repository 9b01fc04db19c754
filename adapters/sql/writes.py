"""Writes on locked rows inside one transaction, returning a Change per document.

Rows are selected FOR UPDATE (SQLite: under BEGIN IMMEDIATE), updated in Python
with Mongo semantics and written back with a version max(_v + 1, now_us).
"""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

from typing import Any

from adapters.base import Change, Doc
from adapters.clock import CLOCK, new_id, next_version
from adapters.documents import check_doc
from adapters.names import VERSION_FIELD
from adapters.sql.compiler import Compiler, Params
from adapters.sql.dialect import Dialect
from adapters.sql.driver import Conn
from adapters.sql.layout import Layout
from adapters.updates import apply_update, upsert_doc
from common.errors import Conflict, InvalidQuery, NotFound


def _version(layout: Layout, previous: int | None) -> int:
    return next_version(previous) if layout.has_version else CLOCK.tick()


async def locked(
    conn: Conn, d: Dialect, layout: Layout, find: Doc, *, one: bool
) -> list[tuple[Doc, int | None]]:
    """The matching documents (and stored versions), locked for this transaction."""
    params = Params(d)
    where = Compiler(d, lambda p: layout.resolve(d, p), params).where(find)
    cols = ", ".join(d.q(c) for c in layout.columns())
    order = f" ORDER BY {d.q('id')}" + d.limit(1, None) if one else ""
    rows = await conn.fetch(f"SELECT {cols} FROM {layout.sql} WHERE {where}{order}{d.for_update}", params.values)
    return [layout.decode(d, row) for row in rows]


async def insert(conn: Conn, d: Dialect, layout: Layout, docs: list[Doc], *, check_existing: bool = True
                 ) -> list[Change]:
    """Insert documents; Conflict if an id exists already (or repeats in `docs`).

    `check_existing=False` leaves duplicates to the primary key (the driver's error is a Conflict
    without the id): for a lone insert, where a look-up first would cost a round trip."""
    ready: list[Doc] = []
    for doc in docs:
        doc = dict(check_doc(doc, "id"))
        if "id" not in doc:
            if layout.id_kind != "string":
                raise InvalidQuery(f"documents in {layout.col!r} need an integer id")
            doc = {"id": new_id(), **doc}
        ready.append(doc)
    ids = [doc["id"] for doc in ready]
    dupes = [i for n, i in enumerate(ids) if i in ids[:n]]
    if not dupes and check_existing:
        params = Params(d)
        marks = ", ".join(params.add(i) for i in ids)
        sql = f"SELECT {d.q('id')} FROM {layout.sql} WHERE {d.q('id')} IN ({marks})"
        rows = await conn.fetch(sql, params.values)
        dupes = [row[0] for row in rows]
    if dupes:
        raise Conflict(f"document with id {dupes[0]} already exists")
    changes = []
    rows_out = []
    for doc in ready:
        values = layout.encode(d, doc)
        version = _version(layout, None)
        rows_out.append([*values.values(), version] if layout.has_version else list(values.values()))
        changes.append(Change("insert", doc["id"], layout.stored(doc), version))
    if rows_out:
        cols = ", ".join(d.q(c) for c in layout.columns())
        marks = ", ".join(d.placeholder(n + 1) for n in range(len(layout.columns())))
        await conn.executemany(f"INSERT INTO {layout.sql} ({cols}) VALUES ({marks})", rows_out)
    return changes


async def update(conn: Conn, d: Dialect, layout: Layout, op: str, find: Doc, upd: Doc) -> list[Change]:
    """Apply a validated update to the matching rows (op one | all | upsert)."""
    rows = await locked(conn, d, layout, find, one=op != "all")
    if not rows:
        if op == "one":
            raise NotFound("no document matches the find")
        if op == "upsert":
            return await insert(conn, d, layout, [apply_update(upsert_doc(find), upd)])
        return []
    names = [c for c in layout.columns() if c not in ("id", VERSION_FIELD)]
    sets = ", ".join(f"{d.q(c)} = {d.placeholder(n + 1)}" for n, c in enumerate(names))
    n = len(names)
    if layout.has_version:
        sets += f", {d.q(VERSION_FIELD)} = {d.placeholder(n + 1)}"
        n += 1
    sql = f"UPDATE {layout.sql} SET {sets} WHERE {d.q('id')} = {d.placeholder(n + 1)}"
    changes, batch = [], []
    for doc, previous in rows:
        new = check_doc(apply_update(doc, upd), "id")  # e.g. a $rename deeper than reads can go, $inc past 64 bits
        values = layout.encode(d, new)
        version = _version(layout, previous)
        row: list[Any] = [values[c] for c in names]
        batch.append([*row, version, doc["id"]] if layout.has_version else [*row, doc["id"]])
        changes.append(Change("update", doc["id"], layout.stored(new), version, before=layout.stored(doc)))
    await conn.executemany(sql, batch)
    return changes


async def delete(conn: Conn, d: Dialect, layout: Layout, op: str, find: Doc) -> list[Change]:
    """Delete the matching rows (op one | all); versions report old _v + 1."""
    rows = await locked(conn, d, layout, find, one=op == "one")
    if not rows and op == "one":
        raise NotFound("no document matches the find")
    if rows:
        sql = f"DELETE FROM {layout.sql} WHERE {d.q('id')} = {d.placeholder(1)}"
        await conn.executemany(sql, [[doc["id"]] for doc, _ in rows])
    return [
        Change("delete", doc["id"], None, previous + 1 if previous is not None else CLOCK.tick(), before=doc)
        for doc, previous in rows
    ]
