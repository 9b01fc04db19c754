"""Beyond Space Cloud: resuming after a dropped connection, and live queries across a NATS restart."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse
from mesh.natsd import EmbeddedNats
from tests.support.live import LiveClient
from tests.support.servers import free_port, gateway, project_config
from tests.support.stack import Stack, database_params, stack
from worker import DbWorker

ALLOW_ALL = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


async def write(st: Stack, c: str, op: str, body: dict[str, Any]) -> None:
    r = await st.http.post(st.crud(c, op), json=body)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("db", database_params())
async def test_resume_gets_what_was_missed(db: str, tmp_path: Path, nats_url: str) -> None:
    async with stack(db, tmp_path, nats_url, collections=ALLOW_ALL) as st:
        c, i = "c" + uuid.uuid4().hex[:10], st.id
        await write(st, c, "create", {"op": "all", "doc": [{i: "1", "n": 1}, {i: "2", "n": 2}, {i: "3", "n": 3}]})
        first = await LiveClient.connect(st.gw.ws_url, st.project)
        await first.subscribe("q", c, st.alias, {"n": {"$lt": 10}})
        await write(st, c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"n": 0}}})
        await first.until(lambda: first.snapshot("q")["1"]["n"] == 0)
        await first.close()

        # while the client is away: an insert, an update, a delete, and a document moving out
        await write(st, c, "create", {"op": "one", "doc": {i: "4", "n": 4}})
        await write(st, c, "update", {"op": "one", "find": {i: "2"}, "update": {"$set": {"n": 5}}})
        await write(st, c, "delete", {"op": "one", "find": {i: "3"}})
        await write(st, c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"n": 50}}})

        again = await LiveClient.connect(st.gw.ws_url, st.project)
        try:
            again.rows = first.rows  # the client keeps its cache across the reconnect
            ack = await again.subscribe("q", c, st.alias, {"n": {"$lt": 10}}, resumeFrom=first.last_time["q"])
            assert ack["ack"] is True and ack.get("resumed") is True and ack["docs"] == []
            await again.until(lambda: set(again.snapshot("q")) == {"2", "4"})
            assert again.snapshot("q")["2"]["n"] == 5
            # and it stays live
            await write(st, c, "create", {"op": "one", "doc": {i: "6", "n": 6}})
            await again.until(lambda: "6" in again.snapshot("q"))
        finally:
            await again.close()

        # away too long: told to re-read, with a complete snapshot
        late = await LiveClient.connect(st.gw.ws_url, st.project)
        try:
            ack = await late.subscribe("q", c, st.alias, {"n": {"$lt": 10}},
                                       resumeFrom=int(time.time() * 1000) - 3 * 3600 * 1000)
            assert ack["ack"] is True and ack.get("reset") is True
            assert sorted(f["docId"] for f in ack["docs"]) == ["2", "4", "6"]
        finally:
            await late.close()


async def test_live_queries_survive_a_nats_restart(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedNats(port=port, store_dir=str(tmp_path / "js"))
    url = server.start()
    raw = project_config("prestart", crud={"sqlite": {"type": "sqlite", "conn": str(tmp_path / "r.db"),
                                                      "collections": ALLOW_ALL}})
    cfg = parse(raw, env={})
    worker = DbWorker(url, databases=cfg.databases())
    await worker.start()
    try:
        async with gateway(cfg, url) as gw:
            import httpx

            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
                lc = await LiveClient.connect(gw.ws_url, "prestart")
                try:
                    await lc.subscribe("q", "todos", "sqlite", {})
                    r = await http.post("/v1/api/prestart/crud/sqlite/todos/create", json={"doc": {"id": "a"}})
                    assert r.status_code == 200
                    await lc.until(lambda: "a" in lc.snapshot("q"))

                    server.stop()
                    r = await http.post("/v1/api/prestart/crud/sqlite/todos/create", json={"doc": {"id": "b"}})
                    assert r.status_code == 503  # NATS is down: a clear answer, not a hang
                    server = EmbeddedNats(port=port, store_dir=str(tmp_path / "js"))
                    server.start()
                    for _ in range(100):
                        if gw.gw.core.nc.is_connected:
                            break
                        await asyncio.sleep(0.1)
                    for _ in range(50):  # the worker reconnects too
                        r = await http.post("/v1/api/prestart/crud/sqlite/todos/create", json={"doc": {"id": "c"}})
                        if r.status_code == 200:
                            break
                        await asyncio.sleep(0.1)
                    assert r.status_code == 200, r.text
                    await lc.until(lambda: "c" in lc.snapshot("q"), timeout=10)
                finally:
                    await lc.close()
    finally:
        await worker.stop()
        server.stop()
