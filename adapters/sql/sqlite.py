"""SQLite driver (aiosqlite): one writer connection, a small pool of readers, WAL journal."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiosqlite

from adapters import deadline
from adapters.failures import internal, os_reason, rejected, unavailable
from adapters.sql.dialect import DIALECTS
from common.errors import Conflict, SpaceCloudError, Timeout, translated

_TOO_LARGE = ("too many sql variables", "string or blob too big", "expression tree is too large",
              "parser stack overflow", "too many terms", "too many columns", "pattern too complex")
_UNAVAILABLE = (("locked", "the database is locked"), ("busy", "the database is busy"),
                ("unable to open", "cannot open the database file"), ("disk i/o", "disk I/O error"),
                ("readonly", "the database is read-only"), ("disk is full", "the disk is full"))


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for a sqlite3 exception (None: not a database error). Our own words
    only: the driver's text goes to the log (`adapters.failures`)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    text = str(exc).lower()
    if isinstance(exc, sqlite3.IntegrityError):
        if "unique" in text:
            return Conflict("a document with the same id already exists")
        return rejected("sqlite", "a value breaks a constraint of the table")
    if isinstance(exc, sqlite3.OperationalError):
        if "interrupted" in text:
            return Timeout("sqlite statement was interrupted at its deadline")
        for needle, reason in _UNAVAILABLE:
            if needle in text:
                return unavailable("sqlite", reason)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        return unavailable("sqlite", "the file is not an SQLite database")
    if isinstance(exc, sqlite3.Error) and "integer overflow" in text:
        return rejected("sqlite", "a number is out of range (integer overflow)")
    if isinstance(exc, sqlite3.Error) and any(needle in text for needle in _TOO_LARGE):
        return rejected("sqlite", "the query is too large")
    if (isinstance(exc, ValueError) and "connection" in text) or isinstance(exc, sqlite3.ProgrammingError):
        return unavailable("sqlite", "the connection is closed")
    if isinstance(exc, sqlite3.Error | OSError):
        return internal("sqlite", exc)
    return None


async def _run(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> None:
    await db.execute_fetchall(sql, tuple(params))  # one hop to the connection's thread (not execute + close)


async def _wal(db: aiosqlite.Connection, tries: int = 50) -> None:
    """Put the file in WAL mode (it stays so). Changing the journal mode fails at once, without the busy
    handler, while another connection opens the same new file: try again for up to about 5 s."""
    for attempt in range(tries):
        try:
            async with db.execute("PRAGMA journal_mode") as cur:
                row = await cur.fetchone()
            if row is not None and str(row[0]).lower() == "wal":
                return
            await _run(db, "PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc).lower() and "busy" not in str(exc).lower()) or attempt == tries - 1:
                raise
            await asyncio.sleep(0.1)


class _Conn:
    """Every statement is interrupted (`sqlite3_interrupt`) when the request's deadline passes, and
    the answer is `Timeout`; an interrupted write rolls its whole transaction back."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._bounded():  # one hop to the connection's thread (not execute + fetchall + close)
            return [tuple(r) for r in await self.db.execute_fetchall(sql, tuple(params))]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        async with self._bounded():
            await _run(self.db, sql, params)

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        async with self._bounded():
            await self.db.executemany(sql, [tuple(r) for r in rows])

    @asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        budget = deadline.statement_budget("sqlite")
        if budget is None:
            yield
            return
        # sqlite3's interrupt() may be called from any thread (aiosqlite's interrupt() calls it directly)
        timer = asyncio.get_running_loop().call_later(budget, self.db._conn.interrupt)
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc).lower():
                raise deadline.exceeded("sqlite", budget) from None
            raise
        finally:
            timer.cancel()


class SQLiteDriver:
    """Writes serialise on one connection under BEGIN IMMEDIATE; reads use a pool of up to `readers`
    connections (each with its own thread; WAL lets them run beside the writer and each other), so
    one slow read does not hold up the others. In memory, everything uses the one writer connection
    (another connection would open another, empty database)."""

    dialect = DIALECTS["sqlite"]

    def __init__(self, path: str, *, readers: int = 4) -> None:
        if readers < 1:
            raise ValueError(f"readers must be at least 1, got {readers}")
        self.path = path
        self.memory = path in ("", ":memory:")
        self._writer: aiosqlite.Connection | None = None
        self._wlock = asyncio.Lock()
        self._opening = asyncio.Lock()
        self._readers: list[aiosqlite.Connection] = []  # every open reader, opened when first needed
        self._idle: list[aiosqlite.Connection] = []
        self._free = asyncio.Semaphore(readers)

    async def _open(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path or ":memory:", isolation_level=None)
        try:
            await _run(db, "PRAGMA busy_timeout = 5000")
            if not self.memory:
                await _wal(db)
        except BaseException:
            await db.close()  # its thread is not a daemon: left running, the process could never exit
            raise
        return db

    def _folder_missing(self) -> bool:
        return not self.memory and not os.path.isdir(os.path.dirname(os.path.abspath(self.path)))

    async def connect(self) -> None:
        if self._writer is not None:
            return
        async with self._opening:  # requests arriving together open one writer, not one each
            if self._writer is not None:
                return
            if self._folder_missing():
                # checked here: a failed aiosqlite.connect leaves its worker thread posting to the loop
                raise unavailable("sqlite", f"the directory of {self.path!r} does not exist")
            try:
                self._writer = await self._open()
            except Exception as exc:
                raise (map_error(exc) or unavailable("sqlite", os_reason(exc))) from exc

    async def _take_reader(self) -> aiosqlite.Connection:
        if self._idle:
            return self._idle.pop()
        try:
            db = await self._open()
        except Exception as exc:
            raise (map_error(exc) or unavailable("sqlite", os_reason(exc))) from exc
        self._readers.append(db)
        return db

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        self._writer, self._readers, self._idle = None, [], []
        for reader in readers:
            await reader.close()
        if writer is not None:
            await writer.close()

    @asynccontextmanager
    async def _hold(self, tx: bool, budget: float | None) -> AsyncIterator[aiosqlite.Connection]:
        """The writer (for `tx`, and for everything in memory) or a free reader, waited for within
        `budget` seconds."""
        on_writer = tx or self.memory
        gate = self._wlock if on_writer else self._free
        try:
            async with asyncio.timeout(budget):
                await gate.acquire()
        except TimeoutError:
            if budget is None:
                raise
            busy = Timeout(f"sqlite: the connection stayed busy past the deadline ({budget:.3g}s)")
            raise (deadline.rolled_back(busy) if tx else busy) from None
        try:
            if on_writer:
                assert self._writer is not None
                yield self._writer
                return
            db = await self._take_reader()
            try:
                yield db
            finally:
                if db in self._readers:  # not closed meanwhile
                    self._idle.append(db)
        finally:
            gate.release()

    @asynccontextmanager
    async def _use(self, tx: bool, *, single: bool = False) -> AsyncIterator[_Conn]:
        """`tx`: on the writer, inside BEGIN IMMEDIATE ... COMMIT. `single`: on the writer, one
        statement in autocommit (SQLite makes it atomic by itself): one hop to the writer's thread
        instead of three."""
        await self.connect()
        try:
            budget = deadline.statement_budget("sqlite")
        except Timeout as exc:
            raise (deadline.rolled_back(exc) if tx or single else exc) from None
        async with self._hold(tx or single, budget) as db:
            conn = _Conn(db)
            with translated(map_error):
                if tx:
                    await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    if tx:
                        deadline.before_commit()
                        await _run(db, "COMMIT")
                except BaseException as exc:
                    if tx:
                        with suppress(Exception):
                            await _run(db, "ROLLBACK")
                    if (tx or single) and isinstance(exc, Timeout):
                        raise deadline.rolled_back(exc) from None  # an interrupted statement undoes itself
                    raise

    def transaction(self) -> Any:
        return self._use(True)

    def reader(self) -> Any:
        return self._use(False)

    def statement(self) -> Any:
        """For one write statement (a lone insert): the writer connection, under its lock, in autocommit."""
        return self._use(False, single=True)

    async def table_columns(self, conn: Any, table: str, schema: str | None = None) -> dict[str, str]:
        rows = await conn.fetch("SELECT name, type FROM pragma_table_info(?)", [table])
        return {str(name): str(kind) for name, kind in rows}
