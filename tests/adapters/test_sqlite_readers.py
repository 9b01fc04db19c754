"""SQLite reads run on a small pool of reader connections: one heavy read no longer holds up every
other read of the same database (the finding "one heavy SQLite read blocks every other read")."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.sql.sqlite import SQLiteDriver
from common.errors import Timeout
from tests.adapters.conftest import within

ENDLESS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
COUNT = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r LIMIT ?) SELECT count(*) FROM r"


@asynccontextmanager
async def opened(path: str, readers: int = 4) -> AsyncIterator[SQLiteDriver]:
    driver = SQLiteDriver(path, readers=readers)
    await driver.connect()
    try:
        async with driver.transaction() as conn:
            await conn.execute("CREATE TABLE t (n INTEGER)")
            await conn.executemany("INSERT INTO t VALUES (?)", [[i] for i in range(100)])
        yield driver
    finally:
        await driver.close()


async def count(driver: SQLiteDriver) -> int:
    async with driver.reader() as conn:
        return int((await conn.fetch("SELECT count(*) FROM t"))[0][0])


async def heavy(driver: SQLiteDriver, holding: asyncio.Event, seconds: float) -> None:
    """A read that runs until its deadline `seconds` from now interrupts it (`Timeout`)."""
    with within(seconds):
        async with driver.reader() as conn:
            holding.set()
            await conn.fetch(ENDLESS)


@pytest.mark.parametrize("readers", [4, 1])
async def test_quick_reads_finish_while_a_heavy_read_runs(tmp_path: Path, readers: int) -> None:
    """With the pool the quick reads all finish while the heavy one runs; with one reader (what the
    driver had before the pool) they queue behind it."""
    async with opened(str(tmp_path / "t.db"), readers) as driver:
        holding = asyncio.Event()
        slow = asyncio.create_task(heavy(driver, holding, 2.5))
        await holding.wait()
        quick: list[bool] = []  # for each quick read: was the heavy read still running when it finished?

        async def read() -> None:
            assert await count(driver) == 100
            quick.append(not slow.done())

        await asyncio.wait_for(asyncio.gather(*(read() for _ in range(6))), 30)
        with pytest.raises(Timeout, match="sqlite statement exceeded its deadline"):
            await slow
        assert quick == ([True] * 6 if readers > 1 else [False] * 6)


async def test_readers_see_what_the_writer_committed(tmp_path: Path) -> None:
    async with opened(str(tmp_path / "t.db")) as driver:
        gate = asyncio.Event()

        async def hold() -> int:  # four at once: every pooled connection is open and has read
            async with driver.reader() as conn:
                await gate.wait()
                return int((await conn.fetch("SELECT count(*) FROM t"))[0][0])

        held = [asyncio.create_task(hold()) for _ in range(4)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await asyncio.gather(*held) == [100] * 4
        assert len(driver._readers) == 4
        async with driver.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (1000)")
        gate.clear()
        held = [asyncio.create_task(hold()) for _ in range(4)]
        await asyncio.sleep(0.05)
        gate.set()
        assert await asyncio.gather(*held) == [101] * 4


async def test_more_heavy_reads_than_readers_all_complete_the_extra_ones_wait(tmp_path: Path) -> None:
    async with opened(str(tmp_path / "t.db"), readers=2) as driver:
        running, most = 0, 0

        async def read() -> int:
            nonlocal running, most
            async with driver.reader() as conn:
                running += 1
                most = max(most, running)
                try:
                    return int((await conn.fetch(COUNT, [500_000]))[0][0])
                finally:
                    running -= 1

        assert await asyncio.wait_for(asyncio.gather(*(read() for _ in range(5))), 60) == [500_000] * 5
        assert most == 2
        assert len(driver._readers) == 2


async def test_a_wait_for_a_reader_past_the_deadline_is_the_same_timeout(tmp_path: Path) -> None:
    async with opened(str(tmp_path / "t.db"), readers=1) as driver:
        holding = asyncio.Event()
        slow = asyncio.create_task(heavy(driver, holding, 3))
        await holding.wait()
        with within(0.3), pytest.raises(Timeout) as waited:
            await count(driver)
        assert waited.value.message == "sqlite: the connection stayed busy past the deadline (0.3s)"
        assert not slow.done()
        with pytest.raises(Timeout, match="sqlite statement exceeded its deadline"):
            await slow
        assert await count(driver) == 100  # the reader is free again


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


async def _no_new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    for _ in range(100):  # each connection's thread ends a moment after its close() returns
        if not _new_threads(before):
            break
        await asyncio.sleep(0.02)
    return _new_threads(before)


async def test_close_closes_every_pooled_connection(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    driver = SQLiteDriver(str(tmp_path / "t.db"), readers=3)
    gate, holding = asyncio.Event(), []

    async def hold() -> None:
        async with driver.reader() as conn:
            holding.append(conn)
            await gate.wait()
            await conn.fetch("SELECT 1")

    held = [asyncio.create_task(hold()) for _ in range(3)]
    for _ in range(200):  # all three hold a reader at once (opening one may be slow on a busy machine)
        if len(holding) == 3:
            break
        await asyncio.sleep(0.025)
    gate.set()
    await asyncio.gather(*held)
    pool = list(driver._readers)
    assert len(pool) == 3 and len(_new_threads(before)) == 4  # the writer and three readers
    await driver.close()
    assert driver._readers == [] and driver._idle == []
    assert await _no_new_threads(before) == []
    assert all(db._connection is None for db in pool)


async def test_memory_uses_the_one_writer_connection_for_everything() -> None:
    before = set(threading.enumerate())
    async with opened(":memory:") as driver:
        assert await asyncio.gather(*(count(driver) for _ in range(5))) == [100] * 5
        async with driver.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (1000)")
        assert await count(driver) == 101
        assert driver._readers == [] and len(_new_threads(before)) == 1
    assert await _no_new_threads(before) == []
