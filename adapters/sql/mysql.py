"""MySQL/MariaDB driver (aiomysql pool, explicit transactions) and its error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any
from urllib.parse import unquote, urlparse

import aiomysql
import pymysql  # type: ignore[import-untyped]

from adapters import deadline
from adapters.sql.dialect import DIALECTS
from common.errors import Conflict, InvalidQuery, ServiceUnavailable, SpaceCloudError, translated

_GONE = {1040, 1053, 1927, 2002, 2003, 2006, 2013, 2014, 2055}


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for a pymysql/OS exception (None: not a database error)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if isinstance(exc, pymysql.err.IntegrityError) and code == 1062:
        return Conflict("a document with the same id already exists")
    if isinstance(exc, OSError | TimeoutError | pymysql.err.InterfaceError) or code in _GONE:
        return ServiceUnavailable(f"mysql unavailable: {exc}")
    if isinstance(exc, pymysql.err.DataError):
        return InvalidQuery(f"mysql rejected a value: {exc}")
    if isinstance(exc, pymysql.err.MySQLError) or type(exc).__module__.startswith(("aiomysql", "pymysql")):
        return SpaceCloudError(f"mysql error: {exc}")
    return None


class _Conn:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self.cur.execute(sql, tuple(params) or None)
        return list(await self.cur.fetchall())

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.cur.execute(sql, tuple(params) or None)

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        for row in rows:  # aiomysql's executemany rewrites only INSERT ... VALUES
            await self.cur.execute(sql, tuple(row))


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
            raise (map_error(exc) or ServiceUnavailable(f"mysql unavailable: {exc}")) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    @asynccontextmanager
    async def _acquire(self, tx: bool) -> AsyncIterator[_Conn]:
        await self.connect()
        with translated(map_error):
            async with self._pool.acquire() as con:
                try:
                    if tx:
                        await con.begin()
                    async with con.cursor() as cur:
                        yield _Conn(cur)
                    deadline.before_commit()
                    await con.commit()
                except BaseException as exc:
                    if isinstance(map_error(exc), ServiceUnavailable):
                        con.close()
                    else:
                        with suppress(Exception):
                            await con.rollback()
                    raise

    def transaction(self) -> Any:
        return self._acquire(True)

    def reader(self) -> Any:
        return self._acquire(False)

    def statement(self) -> Any:
        return self._acquire(False)  # autocommit is off: the statement is committed on release

    async def table_columns(self, conn: Any, table: str, schema: str | None = None) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            [table],
        )
        return {str(name): str(kind) for name, kind in rows}
