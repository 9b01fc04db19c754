"""MySQL/MariaDB driver (aiomysql pool, explicit transactions) and its error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import unquote, urlparse

import aiomysql
import pymysql  # type: ignore[import-untyped]

from adapters import deadline
from adapters.failures import internal, os_reason, rejected, unavailable
from adapters.sql.dialect import DIALECTS
from common.errors import Conflict, SpaceCloudError, Timeout, translated

_GONE = {1053: "the server is shutting down", 1927: "the connection was killed", 2002: "connection refused",
         2003: "connection refused", 2006: "the server has gone away", 2013: "connection lost",
         2014: "connection out of sync", 2055: "connection lost", 1040: "too many connections",
         1203: "too many connections for the user", 1041: "out of memory", 1021: "the disk is full",
         1045: "authentication failed", 1044: "access denied to the database", 1049: "the database does not exist"}
_REJECTED = {
    1264: "a number is out of range", 1690: "a number is out of range", 1366: "a value has the wrong type",
    1292: "a value has the wrong type or format", 1367: "an invalid number", 1365: "division by zero",
    1406: "a value is too long", 1048: "a required column has no value", 1441: "a date or time is out of range",
    3140: "invalid JSON", 3156: "a JSON value has the wrong type", 4025: "a value breaks a check constraint",
    4038: "invalid JSON", 1153: "the request is too large for the server", 1436: "the query is too complex",
    1038: "the sort needs more memory than the server's sort buffer", 1117: "too many columns",
}
"""Error codes that are the client's fault (400), with what we tell the client."""
_TIMED_OUT = {1969, 3024, 1317}
"""max_statement_time (MariaDB) / max_execution_time (MySQL) exceeded; query interrupted."""


def _gone(exc: BaseException) -> bool:
    """The connection cannot be reused (lost, or left mid-statement)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code in _GONE or isinstance(exc, OSError | pymysql.err.InterfaceError | asyncio.CancelledError)


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for a pymysql/OS exception (None: not a database error). Our own words
    only: the driver's text goes to the log (`adapters.failures`)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code == 1062:
        return Conflict("a document with the same id already exists")
    if code == 1213:
        return Conflict("the write met a concurrent write (deadlock); try again")
    if code in _TIMED_OUT:
        return Timeout("mysql statement exceeded its time limit")
    if code == 1205:
        return Timeout("mysql statement waited too long for a lock")
    if code in _GONE:
        return unavailable("mysql", _GONE[code])
    if isinstance(exc, OSError):
        return unavailable("mysql", os_reason(exc))
    if isinstance(exc, pymysql.err.InterfaceError):
        return unavailable("mysql", "the connection is closed")
    if code in _REJECTED:
        return rejected("mysql", _REJECTED[code])
    if isinstance(exc, pymysql.err.DataError):
        return rejected("mysql", "a value does not fit its type")
    if isinstance(exc, pymysql.err.MySQLError) or type(exc).__module__.startswith(("aiomysql", "pymysql")):
        return internal("mysql", exc)
    return None


_GRACE = 1.0
"""A statement the server has not stopped a second after its deadline (a stalled network) is
abandoned, and its connection closed."""


class _Conn:
    """Every statement carries what is left of the request's deadline as the server's own limit
    (MariaDB: `SET STATEMENT max_statement_time=… FOR …`; MySQL: `MAX_EXECUTION_TIME` on SELECTs),
    so the server stops it; the answer is `Timeout`."""

    def __init__(self, cur: Any, mariadb: bool) -> None:
        self.cur = cur
        self.mariadb = mariadb
        self.broken = False
        """Left in the middle of a statement: the connection must not be reused."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self._run(sql, tuple(params) or None)
        return list(await self.cur.fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(sql, tuple(params) or None)

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        for row in rows:  # aiomysql's executemany rewrites only INSERT ... VALUES
            await self._run(sql, tuple(row))

    async def _run(self, sql: str, args: tuple[Any, ...] | None) -> None:
        budget = deadline.statement_budget("mysql")
        if budget is None:
            await self.cur.execute(sql, args)
            return
        try:
            async with asyncio.timeout(budget + _GRACE):
                await self.cur.execute(self._limited(sql, budget), args)
        except TimeoutError:
            self.broken = True
            raise deadline.exceeded("mysql", budget) from None
        except pymysql.err.MySQLError as exc:
            if exc.args and exc.args[0] in _TIMED_OUT:
                raise deadline.exceeded("mysql", budget) from None
            raise
        except BaseException:
            self.broken = True  # cancelled mid-statement
            raise

    def _limited(self, sql: str, budget: float) -> str:
        if self.mariadb:
            return f"SET STATEMENT max_statement_time={budget:.6f} FOR {sql}"
        if sql.startswith("SELECT "):
            return f"SELECT /*+ MAX_EXECUTION_TIME({max(1, int(budget * 1000))}) */ {sql[7:]}"
        return sql


class MySQLDriver:
    """aiomysql pool with autocommit off; broken connections are closed, never reused."""

    dialect = DIALECTS["mysql"]

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        u = urlparse(url)
        self.params: dict[str, Any] = {
            "host": u.hostname or "127.0.0.1", "port": u.port or 3306, "user": unquote(u.username or "root"),
            "password": unquote(u.password or ""), "db": u.path.lstrip("/") or "test",
        }
        self.max_size = max_size
        self._pool: Any = None

    async def connect(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await aiomysql.create_pool(
                minsize=1, maxsize=self.max_size, autocommit=False, charset="utf8mb4",
                connect_timeout=5, pool_recycle=3600, **self.params,
            )
        except Exception as exc:
            raise (map_error(exc) or unavailable("mysql", os_reason(exc))) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @asynccontextmanager
    async def _acquire(self, tx: bool, *, write: bool = False) -> AsyncIterator[_Conn]:
        await self.connect()
        write = write or tx
        with translated(map_error):
            try:
                budget = deadline.statement_budget("mysql")
                try:
                    async with asyncio.timeout(budget):
                        con = await self._pool.acquire()
                except TimeoutError:
                    if budget is None:
                        raise
                    raise Timeout(f"mysql: no connection came free before the deadline ({budget:.3g}s)") from None
            except Timeout as exc:
                raise (deadline.rolled_back(exc) if write else exc) from None
            conn: _Conn | None = None
            try:
                if tx:
                    await con.begin()
                conn = _Conn(await con.cursor(), "mariadb" in str(con.get_server_info()).lower())
                yield conn
                await conn.cur.close()
                deadline.before_commit()
                await con.commit()
            except BaseException as exc:
                if _gone(exc) or (conn is not None and conn.broken):
                    con.close()
                else:
                    with suppress(Exception):
                        await con.rollback()
                if write and isinstance(exc, Timeout):
                    raise deadline.rolled_back(exc) from None
                raise
            finally:
                self._pool.release(con)

    def transaction(self) -> Any:
        return self._acquire(True)

    def reader(self) -> Any:
        return self._acquire(False)

    def statement(self) -> Any:
        return self._acquire(False, write=True)  # autocommit is off: the statement is committed on release

    async def table_columns(self, conn: Any, table: str, schema: str | None = None) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            [table],
        )
        return {str(name): str(kind) for name, kind in rows}
