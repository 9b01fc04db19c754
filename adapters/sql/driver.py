"""The small seam between the generic SQL adapter and one database driver."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adapters.sql.dialect import Dialect


class Conn(Protocol):
    """One connection, inside a transaction (writes) or not (reads)."""

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    async def executemany(self, sql: str, rows: list[list[Any]]) -> None: ...


class Driver(Protocol):
    """A pool for one database; every context manager maps driver errors to adapter errors."""

    dialect: Dialect

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A connection in a write transaction: committed on exit, rolled back on error."""
        ...

    def statement(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for one write statement, atomic by itself: no BEGIN/COMMIT round trips
        where the database commits a lone statement on its own (else the same as `transaction`)."""
        ...

    def reader(self) -> AbstractAsyncContextManager[Conn]:
        """A connection for reads (sees committed data only)."""
        ...

    async def table_columns(self, conn: Conn, table: str, schema: str | None = None) -> dict[str, str]:
        """{column: SQL type} of an existing table; empty if it does not exist. `schema` (PostgreSQL
        only) None is the connection's current schema."""
        ...
