"""`/metrics`: what a running gateway and db worker expose, and a real Prometheus scraping them."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import parse
from sdk import Forbidden, Mesh
from tests.support.servers import free_port, gateway, project_config
from worker.service import DbWorker

ALLOW = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}},
         "secret": {"rules": {"read": {"rule": "deny"}}}}
CRUD = "/v1/api/{project}/crud/{alias}/{col}/{kind}"
CALL = "/v1/api/{project}/functions/{service}/{func}"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Stack:
    http: httpx.AsyncClient
    gateway_port: int
    worker_port: int
    project: str


@pytest.fixture
async def stack(tmp_path: Path, nats_url: str) -> AsyncIterator[Stack]:
    project = "m" + uuid.uuid4().hex[:8]
    cfg = parse(project_config(project, crud={"db": {"type": "sqlite", "conn": str(tmp_path / "m.db"),
                                                     "collections": ALLOW}},
                               functions={"enabled": True, "services": {"calc": {"functions": {
                                   "add": {"rule": {"rule": "allow"}}, "no": {"rule": {"rule": "deny"}}}}}}),
                env={})
    worker = DbWorker(nats_url, databases=cfg.databases(), metrics_port=0, metrics_host="127.0.0.1")
    await worker.start()
    svc = Mesh("calc", project=project, nats_url=nats_url)

    @svc.function(idempotent=True)
    async def add(params: Any, auth: Any) -> int:
        return int(params["a"]) + int(params["b"])

    @svc.function
    async def refuse(params: Any, auth: Any) -> None:
        raise Forbidden("not you")

    try:
        async with svc, gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            assert worker.status_port is not None
            yield Stack(http, gw.port, worker.status_port, project)
    finally:
        await worker.stop()


async def traffic(s: Stack) -> None:
    p = s.project
    for n in range(5):
        r = await s.http.post(f"/v1/api/{p}/crud/db/todos/create", json={"doc": {"id": str(n)}})
        assert r.status_code == 200, r.text
    assert (await s.http.post(f"/v1/api/{p}/crud/db/todos/read", json={"find": {}})).status_code == 200
    assert (await s.http.post(f"/v1/api/{p}/crud/db/secret/read", json={"find": {}})).status_code in (401, 403)
    r = await s.http.post(f"/v1/api/{p}/functions/calc/add", json={"params": {"a": 1, "b": 2}})
    assert r.json() == {"result": 3}
    assert (await s.http.post(f"/v1/api/{p}/functions/calc/no", json={})).status_code in (401, 403)
    assert (await s.http.post(f"/v1/api/{p}/functions/nobody/add", json={})).status_code in (401, 403, 503)


async def test_gateway_and_worker_metrics(stack: Stack) -> None:
    await traffic(stack)
    r = await stack.http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    p = stack.project
    assert value(found, "sc_http_requests_total", route=CRUD, method="POST", status="200") >= 6
    assert value(found, "sc_http_requests_total", route=CRUD, method="POST", status="401") + value(
        found, "sc_http_requests_total", route=CRUD, method="POST", status="403") >= 1
    assert value(found, "sc_http_request_seconds_count", route=CRUD) >= 7
    assert value(found, "sc_function_calls_total", project=p, service="calc", function="add", outcome="ok") == 1
    assert value(found, "sc_rule_denials_total", op="read") >= 1
    assert value(found, "sc_rule_denials_total", op="function") >= 1
    assert value(found, "sc_service_breaker_state", project=p, service="calc") == 0
    assert ("sc_websocket_connections", frozenset()) in found

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.worker_port}") as w:
        text = (await w.get("/metrics")).text
        health = (await w.get("/healthz")).json()
    worker = samples(text)
    assert value(worker, "sc_db_operations_total", project=p, alias="db", op="create", outcome="ok") == 5
    assert value(worker, "sc_db_operations_total", project=p, alias="db", op="read", outcome="ok") >= 1
    assert value(worker, "sc_db_change_events_total", project=p, alias="db") == 5
    assert value(worker, "sc_db_breaker_state", project=p, alias="db") == 0
    assert value(worker, "sc_db_connected", project=p, alias="db") == 1
    assert health["serving"] is True


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.asynccontextmanager
async def prometheus(tmp_path: Path, targets: list[str]) -> AsyncIterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install -y prometheus)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: space-cloud\n"
        "    scrape_interval: 1s\n"
        f"    static_configs: [{{targets: [{', '.join(repr(t) for t in targets)}]}}]\n"
    )
    proc = _spawn([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def query(prom: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    r = await prom.get("/api/v1/query", params={"query": promql})
    r.raise_for_status()
    result: list[dict[str, Any]] = r.json()["data"]["result"]
    return result


async def test_a_real_prometheus_scrapes_the_gateway_and_the_worker(stack: Stack, tmp_path: Path) -> None:
    await traffic(stack)
    targets = [f"127.0.0.1:{stack.gateway_port}", f"127.0.0.1:{stack.worker_port}"]
    async with prometheus(tmp_path, targets) as url, httpx.AsyncClient(base_url=url, timeout=5) as prom:
        up: list[dict[str, Any]] = []
        for _ in range(300):  # Prometheus starts and scrapes within seconds; bounded at 30 s
            with contextlib.suppress(httpx.HTTPError):
                up = await query(prom, 'up{job="space-cloud"} == 1')
                if len(up) == 2:
                    break
            await asyncio.sleep(0.1)
        assert len(up) == 2, f"both targets scraped: {up}"
        p = stack.project
        crud = await query(prom, f'sc_http_requests_total{{route="{CRUD}",status="200"}}')
        assert crud and float(crud[0]["value"][1]) >= 6
        calls = await query(prom, f'sc_function_calls_total{{project="{p}",service="calc",function="add"}}')
        assert [c["metric"]["outcome"] for c in calls] == ["ok"]
        ops = await query(prom, f'sum by (op) (sc_db_operations_total{{project="{p}",outcome="ok"}})')
        assert {o["metric"]["op"]: float(o["value"][1]) for o in ops}["create"] == 5
        latency = await query(prom, f'sc_http_request_seconds_bucket{{route="{CALL}",le="+Inf"}}')
        assert latency and float(latency[0]["value"][1]) >= 1
        assert await query(prom, f'sc_db_breaker_state{{project="{p}",alias="db"}} == 0')
