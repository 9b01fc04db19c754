"""PostgreSQL driver (asyncpg pool) and its error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import asyncpg

from adapters import deadline
from adapters.failures import internal, os_reason, rejected, unavailable
from adapters.sql.dialect import DIALECTS
from common.errors import Conflict, SpaceCloudError, Timeout, translated

_REJECTED = {
    "22003": "a number is out of range",
    "22P02": "a value has the wrong type or format",
    "22007": "an invalid date or time",
    "22008": "a date or time is out of range",
    "22012": "division by zero",
    "22001": "a value is too long",
    "22021": "a string holds a character the database cannot store",
    "22P05": "a string holds a character the database cannot store (such as \\u0000)",
    "23502": "a required column has no value",
    "23514": "a value breaks a check constraint",
    "23503": "a value breaks a foreign key",
    "54000": "the request is too large for the database",
    "54001": "the query is too complex",
}
"""SQLSTATEs that are the client's fault (400), with what we tell the client."""

_UNAVAILABLE = {"28P01": "authentication failed", "28000": "authentication failed",
                "3D000": "the database does not exist", "53300": "too many connections",
                "53100": "the disk is full", "53200": "out of memory",
                "57P01": "the server was shut down", "57P02": "the server crashed",
                "57P03": "the server is starting up or shutting down"}


T = TypeVar("T")


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for an asyncpg/OS exception (None: not a database error). Our own words
    only: the driver's text goes to the log (`adapters.failures`)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    state = getattr(exc, "sqlstate", None) or ""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict("a document with the same id already exists")
    if state in ("40001", "40P01", "55P03"):
        return Conflict("the write met a concurrent write (serialization failure or deadlock); try again")
    if state == "57014":
        return Timeout("postgres statement was cancelled (statement timeout)")
    if state in _UNAVAILABLE:
        return unavailable("postgres", _UNAVAILABLE[state])
    if state.startswith("08") or state.startswith("53"):
        return unavailable("postgres", "connection lost" if state.startswith("08") else "out of resources")
    if isinstance(exc, OSError):
        return unavailable("postgres", os_reason(exc))
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return unavailable("postgres", "too many connections")
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.InternalClientError):
        return unavailable("postgres", "the connection was lost")  # e.g. terminated mid-operation
    if state in _REJECTED:
        return rejected("postgres", _REJECTED[state])
    if state.startswith("22") or isinstance(exc, asyncpg.DataError):
        return rejected("postgres", "a value does not fit its type")
    if isinstance(exc, asyncpg.PostgresError) or type(exc).__module__.startswith("asyncpg"):
        return internal("postgres", exc)
    return None


async def _init(conn: Any) -> None:
    """Each new connection: no JIT. LLVM compiling a large expression cannot be cancelled (neither a
    statement timeout nor pg_cancel_backend stops it) and these short queries do not gain from it."""
    with suppress(asyncpg.PostgresError):  # a server without JIT
        await conn.execute("SET jit = off")


async def _reset(conn: Any) -> None:
    """What a connection needs before reuse here: no open transaction. The adapter sets no session
    state, listens to nothing and takes no advisory locks, so asyncpg's full reset (RESET ALL,
    UNLISTEN, ...: a round trip on every release) is not needed."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")

_ROLLBACK_GRACE = 1.0


@asynccontextmanager
async def _transaction(con: Any) -> AsyncIterator[None]:
    """BEGIN ... COMMIT; on an error ROLLBACK, and when that does not answer within a second (the
    connection stalled: the statement that timed out may still hold it) the connection is closed,
    which rolls the transaction back on the server."""
    tr = con.transaction()
    await tr.start()
    try:
        yield
    except BaseException as exc:
        try:
            async with asyncio.timeout(_ROLLBACK_GRACE):
                await tr.rollback()
        except Exception:
            con.terminate()
        if isinstance(exc, Timeout):
            raise deadline.rolled_back(exc) from None
        raise
    await tr.commit()


class _Conn:
    """Every statement gets what is left of the request's deadline as asyncpg's `timeout=`: when it
    passes, asyncpg has the server cancel the statement, and the answer is `Timeout`."""

    def __init__(self, con: Any) -> None:
        self.con = con

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._run(self.con.fetch, sql, *params)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(self.con.execute, sql, *params)

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        await self._run(self.con.executemany, sql, rows)

    @staticmethod
    async def _run(call: Callable[..., Awaitable[T]], *args: Any) -> T:
        budget = deadline.statement_budget("postgres")
        if budget is None:
            return await call(*args)
        try:
            return await call(*args, timeout=budget)
        except TimeoutError:
            raise deadline.exceeded("postgres", budget) from None


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
                self.dsn, min_size=1, max_size=self.max_size, timeout=5, reset=_reset, init=_init
            )
        except Exception as exc:
            raise (map_error(exc) or unavailable("postgres", os_reason(exc))) from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _acquire(self, tx: bool) -> AsyncIterator[_Conn]:
        await self.connect()
        with translated(map_error):
            try:
                budget = deadline.statement_budget("postgres")
                try:
                    con = await self._pool.acquire(timeout=budget)
                except TimeoutError:
                    if budget is None:
                        raise
                    raise Timeout(f"postgres: no connection came free before the deadline ({budget:.3g}s)") from None
            except Timeout as exc:
                raise (deadline.rolled_back(exc) if tx else exc) from None
            try:
                if tx:
                    async with _transaction(con):
                        yield _Conn(con)
                        deadline.before_commit()
                else:
                    yield _Conn(con)
            finally:
                await self._pool.release(con)

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
