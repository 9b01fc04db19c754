"""SQLite writes on the one writer connection: a lone insert is one statement in autocommit (one hop
to the writer's thread, not BEGIN + INSERT + COMMIT), and is still all-or-nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import ReadOptions, WriteRequest
from common.errors import Conflict
from tests.adapters.conftest import Backend, open_backend

R = ReadOptions()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Backend]:
    async with open_backend("sqlite-schemaless", tmp_path) as b:
        yield b


async def _traced(b: Backend) -> list[str]:
    """Every statement the writer connection runs from now on, in order."""
    driver: Any = b.adapter.driver  # type: ignore[attr-defined]
    await driver.connect()
    seen: list[str] = []
    await driver._writer.set_trace_callback(lambda sql: seen.append(sql.split()[0].upper()))
    return seen


async def test_a_lone_insert_is_one_statement_on_the_writer(sqlite: Backend) -> None:
    a = sqlite.adapter
    col = await sqlite.seed([{"id": "first"}])  # the table exists: no DDL below
    seen = await _traced(sqlite)
    await a.create(col, [{"id": "x", "n": 1}])
    assert seen == ["INSERT"]
    seen.clear()
    await a.batch([WriteRequest("create", col, "one", {"id": "y"}), WriteRequest("create", col, "one", {"id": "z"})])
    assert seen[0] == "BEGIN" and seen[-1] == "COMMIT"  # more than one write keeps its transaction
    assert sorted(d["id"] for d in await a.read(col, "all", {}, R)) == ["first", "x", "y", "z"]


async def test_a_refused_lone_insert_changes_nothing_and_leaves_the_writer_usable(sqlite: Backend) -> None:
    a = sqlite.adapter
    col = await sqlite.seed([{"id": "x", "n": 1}])
    with pytest.raises(Conflict, match="document with id x already exists"):
        await a.create(col, [{"id": "x", "n": 2}])
    driver: Any = a.driver  # type: ignore[attr-defined]
    assert not driver._writer._conn.in_transaction
    await a.create(col, [{"id": "y"}])
    assert sorted((d["id"], d.get("n")) for d in await a.read(col, "all", {}, R)) == [("x", 1), ("y", None)]
