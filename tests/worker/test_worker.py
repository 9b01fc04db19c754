"""The db worker: several share the requests, a database that is down is a 503, bad requests are 400."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx

from gateway.config import parse
from mesh.discovery import list_services
from mesh.messages import DbRequest
from tests.support.servers import free_port, gateway, project_config
from worker.service import SYSTEM_PROJECT, DbWorker

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


async def test_several_workers_share_the_requests(tmp_path: Path, nats_url: str) -> None:
    cfg = parse(project_config("workers", crud={"sqlite": {"type": "sqlite", "conn": str(tmp_path / "w.db"),
                                                           "collections": ALLOW}}), env={})
    workers = [DbWorker(nats_url, databases=cfg.databases()) for _ in range(2)]
    for w in workers:
        await w.start()
    try:
        async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url) as http:
            for n in range(40):
                r = await http.post("/v1/api/workers/crud/sqlite/items/create", json={"doc": {"id": str(n)}})
                assert r.status_code == 200
            r = await http.post("/v1/api/workers/crud/sqlite/items/read", json={"op": "count"})
            assert r.json() == {"result": 40}
            services = await list_services(gw.gw.core.nc, SYSTEM_PROJECT)
            [db] = [s for s in services if s["name"] == "sc-db"]
            counts = [i["requests"] for i in db["instances"]]
            assert len(counts) >= 2 and sum(1 for c in counts if c > 0) >= 2, counts
    finally:
        for w in workers:
            await w.stop()


async def test_database_down_is_503_and_no_worker_is_503(tmp_path: Path, nats_url: str) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    cfg = parse(project_config("down", crud={"pg": {"type": "postgres", "conn": dead, "collections": ALLOW}}),
                env={})
    async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=20) as http:
        r = await http.post("/v1/api/down/crud/pg/items/read", json={"op": "all"})
        assert r.status_code == 503 and "no instance" in r.json()["error"]  # no worker runs yet
        worker = DbWorker(nats_url, databases=cfg.databases())
        await worker.start()
        try:
            r = await http.post("/v1/api/down/crud/pg/items/read", json={"op": "all"})
            assert r.status_code == 503, r.text
            assert "Traceback" not in r.text and r.json()["error"]
        finally:
            await worker.stop()


async def test_worker_refuses_malformed_requests(tmp_path: Path, nats_url: str) -> None:
    cfg = parse(project_config("raw", crud={"sqlite": {"type": "sqlite", "conn": str(tmp_path / "r.db")}}), env={})
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    try:
        async with gateway(cfg, nats_url) as gw:
            from common.errors import BadRequest, NotFound

            cases: list[tuple[dict[str, Any], type[Exception]]] = [
                ({"col": "x", "op": "one", "doc": [1]}, BadRequest),
                ({"col": "x", "op": "all", "find": {"$where": "1"}}, BadRequest),
            ]
            for body, error in cases:
                op = "create" if "doc" in body else "read"
                try:
                    await gw.gw.core.db_request("raw", "sqlite", op, DbRequest.from_dict(body))
                except error:
                    pass
                else:
                    raise AssertionError(f"{body} was accepted")
            try:
                await gw.gw.core.db_request("raw", "nope", "read", DbRequest(col="x", op="all"))
            except NotFound as exc:
                assert "nope" in exc.message
            else:
                raise AssertionError("unknown alias accepted")
    finally:
        await worker.stop()
    await asyncio.sleep(0)


async def test_a_collections_table_option_reaches_the_adapter(tmp_path: Path, nats_url: str) -> None:
    """`table:` keeps a table made before namespaces: the worker hands every collection's config over."""
    path = tmp_path / "legacy.db"
    with sqlite3.connect(path) as db:  # as the first round made it: no namespace prefix
        db.execute('CREATE TABLE "todos" ("id" TEXT PRIMARY KEY, "doc" TEXT NOT NULL, "_v" INTEGER NOT NULL)')
        db.execute('INSERT INTO "todos" VALUES (?, ?, ?)', ("old", '{"text": "from before"}', 1))
    allow = {op: {"rule": "allow"} for op in ("create", "read")}
    cfg = parse(project_config("legacy", crud={"sqlite": {"type": "sqlite", "conn": str(path), "collections": {
        "todos": {"table": "todos", "rules": allow}}}}), env={})
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    try:
        async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            r = await http.post("/v1/api/legacy/crud/sqlite/todos/read", json={"find": {}})
            assert r.status_code == 200 and r.json()["result"] == [{"id": "old", "text": "from before"}], r.text
    finally:
        await worker.stop()
