"""A server that drops our connections gives ServiceUnavailable at worst, and the next call works."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.base import ReadOptions
from common.errors import ServiceUnavailable
from tests.adapters.conftest import open_backend


@pytest.mark.parametrize("name", [
    pytest.param("postgres-schemaless", marks=pytest.mark.postgres),
    pytest.param("mysql-schemaless", marks=pytest.mark.mysql),
])
async def test_reconnects_after_connections_are_killed(name: str, tmp_path: Path) -> None:
    async with open_backend(name, tmp_path) as b, open_backend(name, tmp_path / "x") as killer:
        col = await b.seed([{"id": "a", "n": 1}])
        assert await b.adapter.read(col, "count", {}, ReadOptions()) == 1
        own = "SELECT pg_backend_pid()" if name.startswith("postgres") else "SELECT CONNECTION_ID()"
        async with b.adapter.driver.reader() as conn:  # type: ignore[attr-defined]
            pid = int((await conn.fetch(own))[0][0])
        kill = f"SELECT pg_terminate_backend({pid})" if name.startswith("postgres") else f"KILL {pid}"
        async with killer.adapter.driver.transaction() as conn:  # type: ignore[attr-defined]
            await conn.execute(kill)
        try:
            await b.adapter.read(col, "count", {}, ReadOptions())
        except ServiceUnavailable:
            pass
        assert await b.adapter.read(col, "count", {}, ReadOptions()) == 1
