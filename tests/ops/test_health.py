"""`GET /v1/api/health`: NATS, JetStream, each database alias as the workers see it, workers and services;
200 while the gateway can serve, 503 when it cannot (for a load balancer)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx

from common.errors import ServiceUnavailable
from gateway.config import parse
from mesh.natsd import EmbeddedNats
from sdk import Mesh
from tests.support.servers import free_port, gateway, project_config
from worker.service import DbWorker

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}}}


async def test_health_reports_every_part(tmp_path: Path, nats_url: str) -> None:
    project = "h" + uuid.uuid4().hex[:8]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    cfg = parse(project_config(project, crud={
        "lite": {"type": "sqlite", "conn": str(tmp_path / "h.db"), "collections": ALLOW},
        "pg": {"type": "postgres", "conn": dead, "collections": ALLOW},
        "unused": {"type": "sqlite", "conn": str(tmp_path / "u.db"), "collections": ALLOW},
    }), env={})
    workers = [DbWorker(nats_url, databases=cfg.databases(), connect_timeout=1.0) for _ in range(2)]
    for w in workers:
        await w.start()
    svc = Mesh("todo", project=project, nats_url=nats_url)

    @svc.function
    async def ping(params: Any, auth: Any) -> str:
        return "pong"

    try:
        async with svc, gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            assert (await http.post(f"/v1/api/{project}/crud/lite/t/read", json={})).status_code == 200
            assert (await http.post(f"/v1/api/{project}/crud/pg/t/read", json={})).status_code == 503
            for w in workers:  # whichever worker served those requests, both have now tried both
                await w.databases[(project, "lite")].get(None)
                with contextlib.suppress(ServiceUnavailable):
                    await w.databases[(project, "pg")].get(None)
            await gw.gw.core.directory.refresh(gw.gw.core.nc)
            await asyncio.sleep(1.1)  # past the reuse of the last report
            r = await http.get("/v1/api/health")
    finally:
        for w in workers:
            await w.stop()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["status"] == "degraded"  # one alias is failing
    assert body["nats"]["connected"] is True and body["jetstream"]["ok"] is True
    assert body["workers"] >= 2
    dbs = {d["alias"]: d for d in body["databases"]}
    assert dbs["lite"]["state"] == "connected" and dbs["lite"]["type"] == "sqlite"
    assert dbs["pg"]["state"] == "failing" and "reason" in dbs["pg"] and "since" in dbs["pg"]
    assert dbs["unused"]["state"] in ("idle", "connected")  # idle unless something read it (e.g. DisabledUsers)
    assert {"project": project, "name": "todo", "instances": 1} in body["services"]


async def test_health_is_503_when_the_gateway_cannot_serve(tmp_path: Path) -> None:
    nats = EmbeddedNats()
    url = nats.start()
    cfg = parse(project_config("h2"), env={})
    try:
        async with gateway(cfg, url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            r = await http.get("/v1/api/health")
            assert r.status_code == 200 and r.json()["status"] == "serving"
            nats.stop()
            for _ in range(100):
                r = await http.get("/v1/api/health")
                if r.status_code == 503:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 503
            body = r.json()
            assert body["ok"] is False and body["status"] == "unavailable"
            assert body["nats"]["connected"] is False
    finally:
        nats.stop()
