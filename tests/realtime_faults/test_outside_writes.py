"""Writes made outside the API (another program, psql, a migration) reach live queries on every database:
PostgreSQL, MySQL/MariaDB, SQLite (another process writing the same file), and Mongo where the server
offers change streams (nx-27017 here; a replica set does too)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from adapters.mongo import MongoAdapter
from gateway.config import parse
from tests.support.changelog import drop_namespace, outside, sql_params, table, until
from tests.support.live import LiveClient
from tests.support.servers import gateway, project_config
from tests.support.stack import stack
from worker import DbWorker
from worker.changelog import ChangeLogOptions

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


@pytest.mark.parametrize("kind", sql_params())
async def test_outside_writes_reach_live_queries(kind: str, tmp_path: Path, nats_url: str) -> None:
    c = "c" + uuid.uuid4().hex[:10]
    async with stack(kind, tmp_path, nats_url, collections=ALLOW) as st:
        assert st.config is not None
        conn = st.config.databases()[0].conn
        try:
            r = await st.http.post(st.crud(c, "create"), json={"doc": {"id": "api", "n": 0}})
            assert r.status_code == 200, r.text
            lc = await LiveClient.connect(st.gw.ws_url, st.project)
            try:
                await lc.subscribe("q", c, st.alias, {"n": {"$lt": 10}})
                t = table(kind, st.project, c)
                await outside(kind, conn, [
                    (f"INSERT INTO {t} (id, doc, _v) VALUES (?, ?, 0)", ["o1", '{"n": 1}']),  # noqa: S608
                    # as a program that knows nothing of `_v` writes (psql, a migration)
                    (f"INSERT INTO {t} (id, doc) VALUES (?, ?)", ["o2", '{"n": 2}']),  # noqa: S608
                ])
                await lc.until(lambda: set(lc.snapshot("q")) == {"api", "o1", "o2"})
                await outside(kind, conn, [
                    (f"UPDATE {t} SET doc = ? WHERE id = ?", ['{"n": 5}', "o1"]),  # noqa: S608
                    (f"UPDATE {t} SET doc = ? WHERE id = ?", ['{"n": 50}', "api"]),  # noqa: S608 moves out
                    (f"DELETE FROM {t} WHERE id = ?", ["o2"]),  # noqa: S608
                ])
                await lc.until(lambda: lc.snapshot("q") == {"o1": {"id": "o1", "n": 5}})
                kinds = [(f["type"], f["docId"]) for f in lc.feeds if f["type"] != "initial"]
                assert kinds == [("insert", "o1"), ("insert", "o2"), ("update", "o1"), ("delete", "api"),
                                 ("delete", "o2")]
                # what the API reads is what the client holds, versions included (they only grew)
                r = await st.http.post(st.crud(c, "read"), json={"find": {"n": {"$lt": 10}}})
                assert r.json()["result"] == [{"id": "o1", "n": 5}]
            finally:
                await lc.close()
        finally:
            if kind != "sqlite":
                await drop_namespace(kind, conn, st.project)


async def test_outside_writes_reach_live_queries_on_mongo_change_streams(tmp_path: Path, nats_url: str,
                                                                         nx_mongo_url: str) -> None:
    """nx-27017 offers change streams (see docs/database-adapters.md): writes from another client arrive."""
    project, c = "nx" + uuid.uuid4().hex[:8], "c" + uuid.uuid4().hex[:10]
    server = nx_mongo_url.rsplit("/", 1)[0] + "/"  # a database of the project's own (nx-27017 has no dotted names)
    cfg = parse(project_config(project, crud={"mongo": {"type": "mongo", "conn": server,
                                                        "collections": ALLOW}}), env={})
    worker = DbWorker(nats_url, databases=cfg.databases(), changelog=ChangeLogOptions(poll=0.1))
    await worker.start()
    client: Any = AsyncMongoClient(server)
    try:
        async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            r = await http.post(f"/v1/api/{project}/crud/mongo/{c}/create", json={"doc": {"_id": "api", "n": 0}})
            assert r.status_code == 200, r.text
            db = worker.databases[(project, "mongo")]
            adapter = await db.get(None)
            assert isinstance(adapter, MongoAdapter)
            await until(lambda: any(c in s._streams for s in worker.changelog._mongo.values()),
                        what="the relay watching the collection")
            lc = await LiveClient.connect(gw.ws_url, project)
            try:
                await lc.subscribe("q", c, "mongo", {"n": {"$lt": 10}})
                other = client[adapter.database][adapter.collection_name(c)]
                await other.insert_one({"_id": "o1", "n": 1})
                await lc.until(lambda: set(lc.snapshot("q")) == {"api", "o1"})
                await other.update_one({"_id": "o1"}, {"$set": {"n": 5}})
                await other.delete_one({"_id": "api"})
                await lc.until(lambda: lc.snapshot("q") == {"o1": {"_id": "o1", "n": 5}})
            finally:
                await lc.close()
    finally:
        await client.close()
        await worker.stop()
