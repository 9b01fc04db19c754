"""Opening SQLite connections: many at once on a new file (several projects, a pool of readers each)
all succeed, and a connection that fails to open leaves no thread behind (aiosqlite's threads are not
daemons: one left running keeps the process from ever exiting)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from adapters.sql.sqlite import SQLiteDriver
from common.errors import SpaceCloudError


def _sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def _left_over(before: set[threading.Thread]) -> set[threading.Thread]:
    """The SQLite threads started since `before` still running 2 s on (a closed one ends shortly after)."""
    for _ in range(40):
        left = _sqlite_threads() - before
        if not left:
            break
        await asyncio.sleep(0.05)
    return left


async def test_many_connections_open_one_new_file_at_once(tmp_path: Path) -> None:
    before = _sqlite_threads()
    for attempt in range(5):  # the race is in the first opens of a new file: try a few new files
        path = str(tmp_path / f"fresh{attempt}.db")
        drivers = [SQLiteDriver(path, readers=4) for _ in range(6)]

        async def read(d: SQLiteDriver) -> Any:
            async with d.reader() as conn:
                return await conn.fetch("SELECT 1")

        try:
            await asyncio.gather(*(d.connect() for d in drivers))
            results = await asyncio.gather(*(read(d) for d in drivers for _ in range(4)))
            assert all(r == [(1,)] for r in results)
            async with drivers[0].reader() as conn:
                assert await conn.fetch("PRAGMA journal_mode") == [("wal",)]
        finally:
            for d in drivers:
                await d.close()
    assert not await _left_over(before)


async def test_a_connection_that_fails_to_open_leaves_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is not an SQLite file" * 100)
    before = _sqlite_threads()
    driver = SQLiteDriver(str(path))
    with pytest.raises(SpaceCloudError):
        await driver.connect()
    await driver.close()
    assert not await _left_over(before), "the failed connection's thread is still running"
