"""Deadlines in the db worker: a write stuck on a stalled connection is answered 504 at its deadline,
saying what and after how long, and is not committed when the connection flows again."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import pytest

from adapters import deadline as db_deadline
from adapters.base import ReadOptions
from adapters.registry import create_adapter
from common.errors import Timeout
from gateway.config import parse
from mesh.messages import DbRequest
from tests.support.databases import database_url
from tests.support.faults import StallProxy
from tests.support.servers import gateway, project_config
from worker.service import DbWorker

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


def _via(url: str, port: int) -> str:
    parts = urlparse(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunparse(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.mark.postgres
async def test_a_stalled_write_is_504_at_its_deadline_and_not_committed_afterwards(
    tmp_path: Path, nats_url: str,
) -> None:
    url = await database_url("postgres-stall")
    target = urlparse(url)
    col = "stall_" + uuid.uuid4().hex[:8]
    async with StallProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        cfg = parse(project_config("stall", crud={
            "pg": {"type": "postgres", "conn": _via(url, proxy.port), "collections": ALLOW},
            "lite": {"type": "sqlite", "conn": str(tmp_path / "l.db"), "collections": ALLOW},
        }), env={})
        worker = DbWorker(nats_url, databases=cfg.databases())
        await worker.start()
        direct = create_adapter("postgres", url, namespace="stall")
        await direct.connect()
        try:
            async with gateway(cfg, nats_url, settings={"db_timeout": 2.0}) as gw:
                core = gw.gw.core
                await core.db_request("stall", "pg", "create", DbRequest(col=col, op="one", doc={"id": "before"}))
                proxy.stall()
                started = time.monotonic()
                with pytest.raises(Timeout) as exc:
                    await core.db_request("stall", "pg", "create", DbRequest(col=col, op="one", doc={"id": "during"}))
                took = time.monotonic() - started
                text = exc.value.message
                # the worker's change relay may hold the one pooled connection then (stuck like the write):
                # the write then waits for a connection instead, and is answered at the same deadline
                assert text.startswith("postgres alias pg (project stall)"), text
                assert ("did not finish a create within 1.8s" in text
                        or "no connection came free before the deadline (1.8s)" in text), text
                assert "rolled back" in text
                assert took < 4, "answered at the deadline, not when the connection comes back"
                # the other alias is not held up meanwhile
                await core.db_request("stall", "lite", "create", DbRequest(col="t", op="one", doc={"id": "x"}))

                proxy.resume()
                await asyncio.sleep(2)  # whatever was held in the proxy reaches the server now
                ids = await direct.read(col, "all", {}, ReadOptions())
                assert [d["id"] for d in ids] == ["before"], "the write answered 504 was never committed"
        finally:
            await worker.stop()
            await direct.drop(col)  # type: ignore[attr-defined]
            await direct.close()


async def test_a_stalled_mongo_write_is_504_saying_it_may_have_been_applied(nats_url: str, nx_mongo_url: str) -> None:
    """A Mongo write cannot be held back at a commit point: its 504 must not claim a rollback."""
    target = urlparse(nx_mongo_url)
    project = "stallm" + uuid.uuid4().hex[:6]
    async with StallProxy(target.hostname or "127.0.0.1", target.port or 27017) as proxy:
        conn = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true&serverSelectionTimeoutMS=1500"
        cfg = parse(project_config(project, crud={"mg": {"type": "mongo", "conn": conn, "collections": ALLOW}}), env={})
        worker = DbWorker(nats_url, databases=cfg.databases())
        await worker.start()
        try:
            async with gateway(cfg, nats_url, settings={"db_timeout": 2.0}) as gw:
                core = gw.gw.core
                await core.db_request(project, "mg", "create", DbRequest(col="c", op="one", doc={"_id": "before"}))
                proxy.stall()
                with pytest.raises(Timeout) as exc:
                    await core.db_request(project, "mg", "create", DbRequest(col="c", op="one", doc={"_id": "during"}))
                text = exc.value.message
                assert text.startswith(f"mongo alias mg (project {project})"), text
                assert "may or may not have been applied" in text, text
                assert "rolled back" not in text, text
                proxy.resume()
        finally:
            await worker.stop()


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mysql"])
async def test_no_commit_is_sent_once_the_deadline_has_passed(kind: str, tmp_path: Path) -> None:
    url = str(tmp_path / "d.db") if kind == "sqlite" else await database_url(f"{kind}-deadline")
    adapter = create_adapter(kind, url, namespace="deadline")
    await adapter.connect()
    col = "late_" + uuid.uuid4().hex[:8]
    try:
        await adapter.create(col, [{"id": "on-time"}])
        token = db_deadline.set_deadline(time.monotonic() + 0.05)
        try:
            await asyncio.sleep(0.1)
            with pytest.raises(Timeout, match="rolled back"):
                await adapter.create(col, [{"id": "late"}])
            with pytest.raises(Timeout, match="rolled back"):
                await adapter.update(col, "all", {}, {"$set": {"x": 1}})
        finally:
            db_deadline.reset_deadline(token)
        assert await adapter.read(col, "all", {}, ReadOptions()) == [{"id": "on-time"}]
    finally:
        await adapter.drop(col)  # type: ignore[attr-defined]
        await adapter.close()
