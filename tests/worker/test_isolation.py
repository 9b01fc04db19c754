"""Bulkheads and breakers in the db worker: one alias that hangs never stalls another, and fails fast
once its breaker is open; a request's deadline bounds the wait for a connect."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout
from gateway.config import parse
from mesh.messages import DbRequest
from tests.support.faults import HangingListener
from tests.support.servers import gateway, project_config
from worker.service import DbWorker

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


async def test_a_hanging_alias_never_stalls_a_healthy_one(tmp_path: Path, nats_url: str) -> None:
    async with HangingListener() as hang:
        cfg = parse(project_config("iso", crud={
            "lite": {"type": "sqlite", "conn": str(tmp_path / "ok.db"), "collections": ALLOW},
            "hang": {"type": "postgres", "conn": f"postgresql://postgres@127.0.0.1:{hang.port}/x",
                     "collections": ALLOW},
        }), env={})
        worker = DbWorker(nats_url, databases=cfg.databases(), alias_concurrency=4, alias_queue=4,
                          connect_timeout=3.0)
        await worker.start()
        try:
            async with gateway(cfg, nats_url, settings={"db_timeout": 1.0}) as gw:
                core = gw.gw.core
                await core.db_request("iso", "lite", "create", DbRequest(col="t", op="one", doc={"id": "a"}))

                # The first request waits for the connect, but no longer than its own deadline.
                with pytest.raises(Timeout) as first:
                    await core.db_request("iso", "hang", "read", DbRequest(col="t", op="all"))
                assert "postgres alias hang (project iso)" in first.value.message
                assert "connecting" in first.value.message

                # Far more requests than the old shared pool of 256 slots, all at the hanging alias ...
                flood = [asyncio.create_task(core.db_request("iso", "hang", "read", DbRequest(col="t", op="all")))
                         for _ in range(300)]
                await asyncio.sleep(0.05)
                # ... and the healthy alias answers every request meanwhile, while the other still connects.
                for _ in range(20):
                    got = await core.db_request("iso", "lite", "read", DbRequest(col="t", op="one",
                                                                                 find={"id": "a"}))
                    assert got == {"id": "a"}
                assert worker.databases[("iso", "hang")].state == "connecting"
                errors = await asyncio.gather(*flood, return_exceptions=True)
                assert all(isinstance(e, SpaceCloudError) for e in errors)
                busy = [e for e in errors if isinstance(e, ServiceUnavailable) and "busy" in e.message]
                assert len(busy) >= 300 - 8, "beyond its 4 running and 4 waiting, the alias refuses at once"

                # The connect fails (the server never answers): the breaker opens and says why and since when.
                for _ in range(100):
                    if worker.databases[("iso", "hang")].state == "failing":
                        break
                    await asyncio.sleep(0.1)
                started = time.monotonic()
                with pytest.raises(ServiceUnavailable) as fast:
                    await core.db_request("iso", "hang", "read", DbRequest(col="t", op="all"))
                assert time.monotonic() - started < 0.5, "an open breaker answers at once"
                text = fast.value.message
                assert "postgres alias hang (project iso) is unavailable" in text
                assert "failing since" in text and "connecting did not complete within 3s" in text
                assert hang.accepted < 5, "the failed connect is remembered, not retried by each of 300 requests"
                assert await core.db_request("iso", "lite", "read", DbRequest(col="t", op="count")) == 1

                data = worker.health()[1]["databases"]
                states = {d["alias"]: d["state"] for d in data}  # type: ignore[attr-defined]
                assert states == {"lite": "connected", "hang": "failing"}
        finally:
            await worker.stop()
