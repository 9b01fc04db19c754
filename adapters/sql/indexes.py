"""Indexes on document paths of schemaless SQL collections, and predicates the planner can use them for.

A collection declares them in its config: `indexes: [userId, [userId, done], address.city]` (a path,
or a list of paths for a compound index). The adapter makes them the first time it sees the
collection's table (`prepare`, idempotent, also for a table that already holds data):

| database | index on `doc` at a path |
|---|---|
| PostgreSQL | an expression index on `("doc" #> '{a,b}')` (the jsonb value: strings, numbers and booleans) |
| SQLite | an expression index on `json_extract("doc", '$.a.b')` (strings and numbers) |
| MySQL/MariaDB | an index on a virtual generated column `_sc_ix_<hash>`: the path's first 191 characters (strings) |

The compiler's exact test of an equality or `$in` on a JSON path is a CASE that no planner can look
into; on an indexed path `prefilter` adds, ANDed before it, a test the index answers and that every
document passing the exact test also passes. The exact test still decides, so results are the same
with or without an index. Mongo indexes natively (`adapters.mongo` reads the same config).
"""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from adapters.indexes import Index, declared
from adapters.namespaces import Place
from adapters.sql.dialect import Dialect
from adapters.sql.driver import Driver
from adapters.values import type_class
from common.errors import InvalidQuery, SpaceCloudError

if TYPE_CHECKING:
    from adapters.sql.layout import Layout, Ref

log = logging.getLogger("space_cloud.adapters")
MYSQL_CHARS = 191
"""Characters of a string a MySQL index column keeps (191 x 4 bytes fits every InnoDB row format)."""
LARGE = 16
"""From this many values on, an `$in` prefilter is one set parameter (as the compiler's own `$in`)."""
COLUMN_PREFIX = "_sc_ix_"
"""MySQL/MariaDB generated columns holding indexed paths: not fields of the collection."""


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def index_name(table_sql: str, index: Index) -> str:
    return f"sc_ix_{_hash(table_sql, *index)}"


def column(path: str) -> str:
    """The MySQL/MariaDB generated column of a path."""
    return f"{COLUMN_PREFIX}{_hash(path)}"


def is_index_column(name: str) -> bool:
    return name.startswith(COLUMN_PREFIX)


def expr(d: Dialect, path: str) -> str:
    """The indexed expression of `path` in `doc`, exactly as the index was made on it."""
    parts = path.split(".")
    if d.name == "postgres":
        return f"(\"doc\" #> '{{{','.join(parts)}}}')"
    if d.name == "sqlite":
        return f"json_extract(\"doc\", '$.{'.'.join(parts)}')"
    return d.q(column(path))


def ddl(d: Dialect, table_sql: str, index: Index, have: set[str]) -> list[str]:
    """Statements making `index` on a schemaless table (`have`: its columns, for MySQL)."""
    name = d.q(index_name(table_sql, index))
    if d.name == "mysql":
        out = []
        for path in index:
            if column(path) not in have:
                source = f"JSON_UNQUOTE(JSON_EXTRACT(`doc`, '$.{path}'))"
                out.append(f"ALTER TABLE {table_sql} ADD COLUMN {d.q(column(path))} VARCHAR({MYSQL_CHARS}) "
                           f"COLLATE utf8mb4_bin GENERATED ALWAYS AS (LEFT({source}, {MYSQL_CHARS})) VIRTUAL")
        out.append(f"CREATE INDEX {name} ON {table_sql} ({', '.join(expr(d, p) for p in index)})")
        return out
    return [f"CREATE INDEX IF NOT EXISTS {name} ON {table_sql} ({', '.join(f'({expr(d, p)})' for p in index)})"]


class Indexed(Protocol):
    """What `prepare` needs of the SQL adapter."""

    kind: str
    collections: dict[str, dict[str, Any]]
    d: Dialect
    driver: Driver

    def place(self, col: str) -> Place: ...


async def prepare(adapter: Indexed, layout: Layout) -> None:
    """Make the indexes `layout`'s collection declares and note the paths they cover in the layout. A
    failure is logged and leaves those paths unindexed (queries stay correct, only slower)."""
    if not layout.schemaless:
        return
    try:
        wanted = declared(adapter.collections, adapter.kind, layout.col)
    except InvalidQuery as exc:
        log.warning("%s: %s: no indexes", layout.col, exc.message)
        return
    if not wanted:
        return
    d, driver = adapter.d, adapter.driver
    place = adapter.place(layout.col)
    covered: set[str] = set()
    for index in wanted:
        name = index_name(layout.sql, index)
        try:
            async with driver.reader() as conn:
                have = set(await driver.table_columns(conn, place.table, place.schema))
                made = await exists(conn, d, place.table, place.schema, name)
            if not made:
                for sql in ddl(d, layout.sql, index, have):
                    async with driver.transaction() as conn:
                        await conn.execute(sql)
                log.info("%s: index on %s", layout.col, ", ".join(index))
        except SpaceCloudError as exc:
            async with driver.reader() as conn:  # another process may have made it meanwhile
                made = await exists(conn, d, place.table, place.schema, name)
            if not made:
                log.warning("%s: the index on %s could not be made: %s", layout.col, ", ".join(index),
                            exc.message)
                continue
        covered.update(index)
    layout.indexed = frozenset(covered)


async def exists(conn: Any, d: Dialect, table: str, schema: str | None, name: str) -> bool:
    """Whether the index `name` exists on `table`."""
    if d.name == "postgres":
        rows = await conn.fetch("SELECT 1 FROM pg_indexes WHERE schemaname = COALESCE($1, current_schema()) "
                                "AND tablename = $2 AND indexname = $3", [schema, table, name])
    elif d.name == "sqlite":
        rows = await conn.fetch("SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?",
                                [table, name])
    else:
        rows = await conn.fetch("SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                                "AND TABLE_NAME = %s AND INDEX_NAME = %s LIMIT 1", [table, name])
    return bool(rows)


def prefilter(d: Dialect, ref: Ref, op: str, arg: Any, add: Callable[[Any], str]) -> str | None:
    """A test on `ref`'s index that every document satisfying `{path: {op: arg}}` (`$eq` or `$in`)
    satisfies, or None where the index cannot help (not indexed, null, a type it does not hold)."""
    if ref.kind != "json" or not ref.indexed:
        return None
    values = [arg] if op == "$eq" else list(arg) if op == "$in" else []
    usable = {"postgres": ("string", "number", "bool"), "sqlite": ("string", "number", "bool"),
              "mysql": ("string",)}[d.name]
    if not values or any(v is None or type_class(v) not in usable for v in values):
        return None  # null (a missing field) and other types are not in the index: it cannot narrow
    target = expr(d, ".".join(ref.parts))
    if d.name == "postgres":
        texts = [orjson.dumps(v).decode() for v in values]
        if len(texts) >= LARGE:
            return f"({target} = ANY({add(texts)}::jsonb[]))"
        marks = [f"{add(t)}::jsonb" for t in texts]
    elif d.name == "sqlite":
        plain = [int(v) if isinstance(v, bool) else v for v in values]
        if len(plain) >= LARGE:
            return f"({target} IN (SELECT value FROM json_each({add(orjson.dumps(plain).decode())})))"
        marks = [add(v) for v in plain]
    else:  # MySQL sends values inside the statement: a long IN list is one constant list to the server
        marks = [add(v[:MYSQL_CHARS]) for v in values]
    if len(marks) == 1:
        return f"({target} = {marks[0]})"
    return f"({target} IN ({', '.join(marks)}))"
