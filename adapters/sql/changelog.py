"""Change capture on PostgreSQL, MySQL/MariaDB and SQLite: triggers write every row change of a
collection's table into its namespace's outbox, in the writing transaction, whoever writes (the API,
psql, another service, a migration); a relay (`worker.changelog`) reads the outbox in order,
publishes, and trims what is stored.

`SqlCapture` is set on a `SqlAdapter` (`adapter.capture`); the adapter calls `prepare()` for each
collection the first time it sees its table, before using it, so the triggers are in place before
the first write through the API. A collection the policy leaves out (`captureOutsideWrites: false`)
and the server's own `_sc_*` tables get no triggers, and those a previous config installed are dropped.
"""

# ruff: noqa: S608 -- SQL text holds only validated, quoted identifiers; every value is a bound parameter

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from adapters.base import Doc
from adapters.changes import Captured, ChangeType
from adapters.names import VERSION_FIELD, collection_key
from adapters.namespaces import Place, sql_place
from adapters.sql import capture_ddl as ddl
from adapters.sql.driver import Conn
from adapters.sql.layout import JSON_DOC, Layout
from common.errors import SpaceCloudError

if TYPE_CHECKING:
    from adapters.sql.adapter import SqlAdapter

log = logging.getLogger("space_cloud.capture")

Policy = Callable[[str], bool]
"""Whether a collection's changes are captured (its name as given)."""


class SqlCapture:
    keeps_lease = False

    def __init__(self, adapter: SqlAdapter, policy: Policy) -> None:
        self.adapter = adapter
        self.policy = policy
        d = adapter.d
        self.d = d
        self._outbox_place = sql_place(adapter.kind, adapter.namespace, ddl.OUTBOX)
        self._leases_place = sql_place(adapter.kind, adapter.namespace, ddl.LEASES)
        self.outbox = self._sql(self._outbox_place)
        self.leases = self._sql(self._leases_place)
        self.ns_hash = ddl.short_hash(adapter.namespace)
        self.covered: set[str] = set()
        """Collections (as `collection_key`) whose triggers are in place."""
        self._ready = False
        self._exists = False
        self._lock = asyncio.Lock()

    def _sql(self, place: Place) -> str:
        table = self.d.q(place.table)
        return f"{self.d.q(place.schema)}.{table}" if place.schema else table

    def covers(self, col: str) -> bool:
        return collection_key(self.adapter.kind, col) in self.covered

    # -- set-up ------------------------------------------------------------------------------------

    async def _setup(self) -> None:
        """The namespace's outbox and lease tables (and, on PostgreSQL, its trigger functions)."""
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            for attempt in (1, 2):  # two processes setting up one namespace at once may collide
                try:
                    await self._run(await self._missing())
                    break
                except SpaceCloudError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.05)
            self._ready = self._exists = True

    async def _missing(self) -> list[str]:
        """The set-up statements still to run."""
        driver, outbox, leases = self.adapter.driver, self._outbox_place, self._leases_place
        async with driver.reader() as conn:
            have_outbox = bool(await driver.table_columns(conn, outbox.table, outbox.schema))
            have_leases = bool(await driver.table_columns(conn, leases.table, leases.schema))
        stmts = []
        schema = outbox.schema
        if self.d.name == "postgres" and schema is not None and not have_outbox:
            stmts.append(f"CREATE SCHEMA IF NOT EXISTS {self.d.q(schema)}")
        table_outbox, table_leases, row = ddl.outbox_ddl(self.d, self.outbox, self.leases)
        stmts += [] if have_outbox else [table_outbox]
        stmts += [] if have_leases else [table_leases]
        stmts.append(row)
        if self.d.name == "postgres":
            stmts += ddl.pg_functions(self.d, schema or "public", self.outbox)
        return stmts

    async def _run(self, stmts: list[str]) -> None:
        async with self.adapter.driver.transaction() as conn:
            for sql in stmts:
                await conn.execute(sql)

    async def prepare(self, layout: Layout) -> None:
        """Install (or remove) the triggers of one collection's table; called by the adapter the first
        time it sees the table. A failure is logged and leaves the collection uncovered (the worker then
        publishes its own writes' changes)."""
        key = collection_key(self.adapter.kind, layout.col)
        wanted = self.policy(layout.col) and not layout.col.startswith(ddl.PREFIX)
        place = self.adapter.place(layout.col)
        for attempt in (1, 2):  # another process may be installing the same triggers
            try:
                if wanted:
                    await self._setup()
                await self._install(layout, place, key, wanted)
                break
            except SpaceCloudError as exc:
                if attempt == 1:
                    await asyncio.sleep(0.05)
                    continue
                self.covered.discard(key)
                log.warning("change capture for %s is off: %s (writes through the API are still published)",
                            layout.col, exc.message)
                return
        if wanted:
            self.covered.add(key)
        else:
            self.covered.discard(key)

    async def _install(self, layout: Layout, place: Place, key: str, wanted: bool) -> None:
        d = self.d
        async with self.adapter.driver.reader() as conn:
            cols = await self.adapter.driver.table_columns(conn, place.table, place.schema)
            existing = await self._triggers(conn, place)
        json_cols = {JSON_DOC} if layout.schemaless else {c for c, kind in layout.fields.items() if kind == "json"}
        target = ddl.Target(key, layout.sql, tuple(cols), frozenset(json_cols))
        if d.name == "postgres":
            ours = f"{ddl.PREFIX}cap_{self.ns_hash}"
            if wanted and ours in existing and (not target.versioned or "_sc_version" in existing):
                return
            if not wanted:
                if ours in existing:
                    await self._run([f"DROP TRIGGER IF EXISTS {d.q(ours)} ON {layout.sql}"])
                return
            await self._run(ddl.pg_triggers(d, self._outbox_place.schema or "public", target, ours))
            return
        table_hash = ddl.short_hash(layout.sql)
        mine = f"{ddl.PREFIX}{self.ns_hash}_{table_hash}_"
        prefix = f"{mine}{ddl.short_hash(*cols, n=6)}_"
        if not wanted:
            desired: dict[str, str] = {}
        elif d.name == "mysql":
            desired = ddl.mysql_triggers(d, self.outbox, target, prefix, f"{ddl.PREFIX}v_{table_hash}_")
        else:
            desired = ddl.sqlite_triggers(d, self.outbox, target, prefix)
        stale = [t for t in existing if t.startswith(mine) and t not in desired]
        missing = [sql for name, sql in desired.items() if name not in existing]
        if stale or missing:
            await self._run([f"DROP TRIGGER IF EXISTS {d.q(t)}" for t in stale] + missing)

    async def _triggers(self, conn: Conn, place: Place) -> set[str]:
        """The names of the triggers on a table."""
        if self.d.name == "postgres":
            rows = await conn.fetch(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND c.relname = $1 AND "
                "n.nspname = COALESCE($2, current_schema())", [place.table, place.schema])
        elif self.d.name == "mysql":
            rows = await conn.fetch("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE "
                                    "TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = %s", [place.table])
        else:
            rows = await conn.fetch("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                                    [place.table])
        return {str(r[0]) for r in rows}

    # -- the relay's side --------------------------------------------------------------------------

    async def any_pending(self) -> bool:
        """Whether the outbox holds anything (a cheap read; no lease, and nothing is created)."""
        async with self.adapter.driver.reader() as conn:
            if not self._exists:
                place = self._outbox_place
                self._exists = bool(await self.adapter.driver.table_columns(conn, place.table, place.schema))
                if not self._exists:
                    return False
            return bool(await conn.fetch(f"SELECT seq FROM {self.outbox}{self.d.limit(1, None)}"))

    async def claim(self, owner: str, *, ttl_ms: int, limit: int) -> list[Captured] | None:
        """Take the outbox's lease for `ttl_ms` (unless another relay holds it: None) and read its first
        `limit` rows, oldest first."""
        await self._setup()
        d, p = self.d, self.d.placeholder
        if self._one_statement_lease:
            return await self._claim_sqlite(owner, ttl_ms=ttl_ms, limit=limit)
        async with self.adapter.driver.transaction() as conn:
            await conn.execute(
                f"UPDATE {self.leases} SET owner = {p(1)}, until_ms = {ddl.now_ms(d)} + {p(2)} "
                f"WHERE name = 'relay' AND (owner = {p(3)} OR until_ms < {ddl.now_ms(d)})", [owner, ttl_ms, owner])
            rows = await conn.fetch(f"SELECT owner FROM {self.leases} WHERE name = 'relay'{d.for_update}")
            if not rows or rows[0][0] != owner:
                return None
            raw = await conn.fetch(f"SELECT seq, col, op, v, doc, old, at_ms FROM {self.outbox} ORDER BY seq"
                                   f"{d.limit(limit, None)}")
        return [await self._decode(r) for r in raw]

    async def _claim_sqlite(self, owner: str, *, ttl_ms: int, limit: int) -> list[Captured] | None:
        """SQLite has one writer, whose lock every create waits for: take the lease in one autocommit
        statement (one hop to the writer's thread, instead of five in a transaction), then read the rows
        on a reader. Only the lease holder deletes outbox rows, and rows are numbered in commit order,
        so reading after the lease is taken sees every row the holder has not trimmed yet."""
        driver, now = self.adapter.driver, ddl.now_ms(self.d)
        async with driver.statement() as conn:
            mine = await conn.fetch(
                f"UPDATE {self.leases} SET owner = ?, until_ms = {now} + ? WHERE name = 'relay' AND "
                f"(owner = ? OR until_ms < {now}) RETURNING owner", [owner, ttl_ms, owner])
        if not mine:
            return None
        async with driver.reader() as conn:
            raw = await conn.fetch(f"SELECT seq, col, op, v, doc, old, at_ms FROM {self.outbox} ORDER BY seq"
                                   f"{self.d.limit(limit, None)}")
        return [await self._decode(r) for r in raw]

    @property
    def _one_statement_lease(self) -> bool:
        return self.d.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)  # UPDATE ... RETURNING

    async def trim(self, owner: str, done: list[Captured], *, release: bool) -> None:
        """Remove stored changes from the outbox; `release` gives the lease up."""
        p = self.d.placeholder
        seqs = [c.seq for c in done]
        if self._one_statement_lease:
            # one autocommit statement each (SQLite's writer: see _claim_sqlite); a lease left held
            # between the two by a crash expires by itself
            for start in range(0, len(seqs), 500):
                part = seqs[start:start + 500]
                async with self.adapter.driver.statement() as conn:
                    await conn.execute(f"DELETE FROM {self.outbox} WHERE seq IN ({', '.join('?' * len(part))})",
                                       part)
            if release:
                async with self.adapter.driver.statement() as conn:
                    await conn.execute(f"UPDATE {self.leases} SET until_ms = 0 WHERE name = 'relay' AND owner = ?",
                                       [owner])
            return
        async with self.adapter.driver.transaction() as conn:
            for start in range(0, len(seqs), 500):
                part = seqs[start:start + 500]
                marks = ", ".join(p(n + 1) for n in range(len(part)))
                await conn.execute(f"DELETE FROM {self.outbox} WHERE seq IN ({marks})", part)
            if release:
                await conn.execute(f"UPDATE {self.leases} SET until_ms = 0 WHERE name = 'relay' AND owner = {p(1)}",
                                   [owner])

    async def _decode(self, row: tuple[Any, ...]) -> Captured:
        seq, col, op, version, doc, old, at_ms = row
        layout = None
        try:
            layout = await self.adapter.layout(str(col), create=False)
        except SpaceCloudError:
            pass
        after = _doc(layout, _json(doc)) if doc is not None else None
        before = _doc(layout, _json(old)) if old is not None else None
        ident = (after or before or {}).get("id")
        kind: ChangeType = op if op in ("insert", "update", "delete") else "update"
        return Captured(int(seq), str(col), kind, ident if isinstance(ident, str | int) else str(ident), after,
                        before, int(version), int(at_ms))


def _json(value: Any) -> dict[str, Any]:
    out = orjson.loads(value) if isinstance(value, str | bytes) else value
    return out if isinstance(out, dict) else {}


def _doc(layout: Layout | None, row: dict[str, Any]) -> Doc:
    """A captured row (its columns as JSON) as the document the API would return."""
    row.pop(VERSION_FIELD, None)
    if layout is None:  # the table is gone: the shape tells
        layout = Layout("", "", set(row) <= {"id", JSON_DOC})
    if layout.schemaless:
        body = row.get(JSON_DOC)
        if isinstance(body, str):
            body = orjson.loads(body)
        return {"id": row.get("id"), **(body if isinstance(body, dict) else {})}
    doc: Doc = {}
    for name, value in row.items():
        if value is None:
            continue
        kind = layout.fields.get(name, "json")
        doc[name] = _value(kind, value)
    return doc


def _value(kind: str, value: Any) -> Any:
    if kind == "boolean":
        return bool(value)
    if kind == "integer" and isinstance(value, int | float | str):
        return int(value)
    if kind == "float" and isinstance(value, int | float | str):
        return float(value)
    if kind == "datetime" and isinstance(value, str):
        return _datetime(value)
    return value


def _datetime(value: str) -> str:
    """A timestamp as the database wrote it into JSON, as the adapter returns dates."""
    if value.endswith("Z") and "T" in value:
        return value
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return value
    parsed = parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
