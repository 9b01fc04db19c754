"""Deadlines (`adapters.deadline`): a statement that runs past the request's deadline is cancelled in
the database and answered `Timeout`; a write cut off that way leaves nothing committed."""

# ruff: noqa: S608 -- SQL text of the tests' own making

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.base import ReadOptions, WriteRequest
from adapters.namespaces import pg_schema
from common.errors import Timeout
from tests.adapters.conftest import Backend, open_backend, within

SQL = [
    pytest.param("sqlite-schemaless", id="sqlite"),
    pytest.param("postgres-schemaless", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql-schemaless", id="mysql", marks=pytest.mark.mysql),
]
SLOW = {  # each runs for 30 s or (SQLite) far longer
    "sqlite": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "postgres": "SELECT pg_sleep(30)",
    "mysql": "SELECT SLEEP(30)",
}
R = ReadOptions()


@asynccontextmanager
async def project(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    ns = "dl" + uuid.uuid4().hex[:10]
    async with open_backend(name, tmp_path, namespace=ns) as b:
        try:
            yield b
        finally:
            if b.adapter.kind == "postgres":
                async with b.adapter.driver.transaction() as conn:  # type: ignore[attr-defined]
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema(ns)}" CASCADE')


async def _still_running(b: Backend, text: str) -> int:
    """How many statements containing `text` the server is still running (PostgreSQL, MySQL)."""
    a: Any = b.adapter
    if a.kind == "postgres":
        sql = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() "
               "AND query LIKE $1")
    elif a.kind == "mysql":
        sql = "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE %s"
    else:
        return 0
    for _ in range(40):  # the cancel reaches the server a moment after the answer
        async with a.driver.reader() as conn:
            n = int((await conn.fetch(sql, [f"%{text}%"]))[0][0])
        if n == 0:
            return 0
        await asyncio.sleep(0.05)
    return n


@pytest.mark.parametrize("name", SQL)
async def test_a_slow_read_ends_at_its_deadline_and_stops_in_the_database(name: str, tmp_path: Path) -> None:
    async with project(name, tmp_path) as b:
        a: Any = b.adapter
        started = time.monotonic()
        with within(0.5), pytest.raises(Timeout, match=rf"{a.kind} statement exceeded its deadline of 0\.\d+s"):
            async with a.driver.reader() as conn:
                await conn.fetch(SLOW[a.kind])
        assert time.monotonic() - started < 10, "ended at the deadline, not when the statement did"
        assert await _still_running(b, SLOW[a.kind][:20]) == 0
        async with a.driver.reader() as conn:  # the connection is fine afterwards
            assert (await conn.fetch("SELECT 1"))[0][0] == 1


@pytest.mark.parametrize("name", SQL)
async def test_a_transaction_cut_off_at_its_deadline_commits_nothing(name: str, tmp_path: Path) -> None:
    async with project(name, tmp_path) as b:
        a: Any = b.adapter
        col = b.col()
        await a.create(col, [{"id": "before"}])
        table = a._sql(a.place(col))
        p = a.d.placeholder
        with within(0.5), pytest.raises(Timeout, match="rolled back"):
            async with a.driver.transaction() as conn:
                await conn.execute(f"INSERT INTO {table} VALUES ({p(1)}, {p(2)}, {p(3)})", ["during", "{}", 1])
                await conn.fetch(SLOW[a.kind])
        assert [d["id"] for d in await a.read(col, "all", {}, R)] == ["before"]


async def _slow_trigger(b: Backend, col: str) -> None:
    """Make every insert into `col`'s table take 30 s (or, on SQLite, far longer)."""
    a: Any = b.adapter
    place = a.place(col)
    table = a._sql(place)
    async with a.driver.transaction() as conn:
        if a.kind == "postgres":
            fn = f'"{place.schema}".slow_insert'
            await conn.execute(f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS "
                               "$$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$")
            await conn.execute(f"CREATE TRIGGER slow BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()")
        elif a.kind == "mysql":
            await conn.execute(f"CREATE TRIGGER `slow_{uuid.uuid4().hex[:8]}` BEFORE INSERT ON {table} "
                               "FOR EACH ROW SET @slept = SLEEP(30)")
        else:
            helper = a.d.q(place.table + "_h")
            await conn.execute(f"CREATE TABLE {helper} (n INTEGER)")
            await conn.execute(f"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2000) "
                               f"INSERT INTO {helper} SELECT n FROM r")
            await conn.execute(f"CREATE TRIGGER slow BEFORE INSERT ON {table} BEGIN "
                               f"SELECT count(*) FROM {helper} a, {helper} b, {helper} c; END")


@pytest.mark.parametrize("name", SQL)
async def test_a_write_slow_in_the_database_is_timeout_and_not_committed(name: str, tmp_path: Path) -> None:
    async with project(name, tmp_path) as b:
        a = b.adapter
        col = b.col()
        await a.create(col, [{"id": "before"}])
        await _slow_trigger(b, col)
        for write in (
            a.create(col, [{"id": "late"}]),
            a.batch([WriteRequest("update", col, "all", find={}, update={"$set": {"n": 1}}),
                     WriteRequest("create", col, "one", {"id": "late2"})]),
        ):
            started = time.monotonic()
            with within(0.5), pytest.raises(Timeout, match=r"exceeded its deadline .*; the write was rolled back"):
                await write
            assert time.monotonic() - started < 10
        assert await a.read(col, "all", {}, R) == [{"id": "before"}]
        assert await _still_running(b, "slow") == 0 or a.kind == "sqlite"


async def test_no_time_left_is_timeout_before_anything_runs(backend: Backend) -> None:
    col = await backend.seed([{"id": "a", "n": 1}])
    a = backend.adapter
    with within(-1):
        for call in (
            a.read(col, "all", {}, R),
            a.read(col, "count", {}, R),
            a.aggregate(col, "all", [{"$match": {"n": 1}}]),
        ):
            with pytest.raises(Timeout, match="deadline"):
                await call
        for call in (
            a.create(col, [backend.doc({"id": "b"})]),
            a.update(col, "all", {}, {"$set": {"n": 2}}),
            a.delete(col, "all", {}),
        ):
            with pytest.raises(Timeout, match="deadline"):
                await call
    assert [backend.norm(d) for d in await a.read(col, "all", {}, R)] == [{"id": "a", "n": 1}]
