"""PostgreSQL driver (asyncpg pool) and its error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from adapters import deadline
from adapters.sql.dialect import DIALECTS
from common.errors import Conflict, InvalidQuery, ServiceUnavailable, SpaceCloudError, translated


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for an asyncpg/OS exception (None: not a database error)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict("a document with the same id already exists")
    if isinstance(
        exc,
        OSError | TimeoutError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError
        | asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError | asyncpg.AdminShutdownError
        | asyncpg.InternalClientError,  # e.g. the server terminated the connection mid-operation
    ):
        return ServiceUnavailable(f"postgres unavailable: {exc}")
    if isinstance(exc, asyncpg.DataError | asyncpg.InvalidTextRepresentationError):
        return InvalidQuery(f"postgres rejected a value: {exc}")
    if isinstance(exc, asyncpg.PostgresError) or type(exc).__module__.startswith("asyncpg"):
        return SpaceCloudError(f"postgres error: {exc}")
    return None



async def _reset(conn: Any) -> None:
    """What a connection needs before reuse here: no open transaction. The adapter sets no session
    state, listens to nothing and takes no advisory locks, so asyncpg's full reset (RESET ALL,
    UNLISTEN, ...: a round trip on every release) is not needed."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")

class _Conn:
    def __init__(self, con: Any) -> None:
        self.con = con

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.con.fetch(sql, *params)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.con.execute(sql, *params)

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        await self.con.executemany(sql, rows)


class PostgresDriver:
    """asyncpg pool; a lost server gives ServiceUnavailable and the pool reconnects by itself."""

    dialect = DIALECTS["postgres"]

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self._pool: Any = None

    async def connect(self) -> None:
        if self._pool is not None:
            return
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.max_size, timeout=5, reset=_reset
            )
        except Exception as exc:
            raise (map_error(exc) or ServiceUnavailable(f"postgres unavailable: {exc}")) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _acquire(self, tx: bool) -> AsyncIterator[_Conn]:
        await self.connect()
        with translated(map_error):
            async with self._pool.acquire() as con:
                if tx:
                    async with con.transaction():
                        yield _Conn(con)
                        deadline.before_commit()
                else:
                    yield _Conn(con)

    def transaction(self) -> Any:
        return self._acquire(True)

    def reader(self) -> Any:
        return self._acquire(False)

    def statement(self) -> Any:
        # Under a deadline, a lone write is committed by our own COMMIT (see adapters.deadline).
        return self._acquire(deadline.deadline() is not None)

    async def table_columns(self, conn: Any, table: str, schema: str | None = None) -> dict[str, str]:
        rows = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = COALESCE($2, current_schema()) AND table_name = $1 ORDER BY ordinal_position",
            [table, schema],
        )
        return {name: kind for name, kind in rows}
