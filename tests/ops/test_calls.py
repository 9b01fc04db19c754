"""Fault tolerance of the gateway's function calls: a bulkhead per service, a breaker for a service whose
instances all fail, and retries of functions their service declares idempotent; all in the metrics."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.config import parse
from sdk import Mesh
from tests.ops.test_metrics import samples, value
from tests.support.servers import RunningGateway, gateway, project_config

ALLOW_ALL = {"enabled": True, "services": {"default": {"functions": {"default": {"rule": {"rule": "allow"}}}}}}


@pytest.fixture
def project() -> str:
    return "c" + uuid.uuid4().hex[:8]


@pytest.fixture
async def gw(nats_url: str, project: str) -> AsyncIterator[RunningGateway]:
    cfg = parse(project_config(project, functions=ALLOW_ALL), env={})
    async with gateway(cfg, nats_url, settings={"service_concurrency": 2}) as running:
        yield running


async def call(http: httpx.AsyncClient, project: str, service: str, func: str, timeout: int = 5000) -> httpx.Response:
    return await http.post(f"/v1/api/{project}/functions/{service}/{func}", json={"params": {}, "timeout": timeout})


async def test_a_full_service_is_503_at_once_and_frees_its_slots(gw: RunningGateway, nats_url: str,
                                                                  project: str) -> None:
    release = asyncio.Event()
    svc = Mesh("slow", project=project, nats_url=nats_url)

    @svc.function
    async def wait(params: Any, auth: Any) -> str:
        await release.wait()
        return "done"

    async with svc, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        held = [asyncio.create_task(call(http, project, "slow", "wait")) for _ in range(2)]
        for _ in range(100):
            guard = gw.gw.core.services.get((project, "slow"))
            if guard is not None and guard.running == 2:
                break
            await asyncio.sleep(0.02)
        r = await call(http, project, "slow", "wait")
        assert r.status_code == 503
        assert "service 'slow' has 2 calls in flight from this gateway, its limit" in r.json()["error"]
        release.set()
        assert [(await t).json() for t in held] == [{"result": "done"}] * 2
        assert (await call(http, project, "slow", "wait")).json() == {"result": "done"}
        found = samples((await http.get("/metrics")).text)
    labels = {"project": project, "service": "slow", "function": "wait"}
    assert value(found, "sc_function_calls_total", **labels, outcome="rejected") == 1
    assert value(found, "sc_function_calls_total", **labels, outcome="ok") == 3


async def test_a_service_whose_instances_all_fail_is_failed_fast_then_probed(gw: RunningGateway, nats_url: str,
                                                                            project: str) -> None:
    calls = 0
    broken = True
    svc = Mesh("flaky", project=project, nats_url=nats_url)

    @svc.function
    async def work(params: Any, auth: Any) -> str:
        nonlocal calls
        calls += 1
        if broken:
            raise RuntimeError("the widget is broken")
        return "fine"

    async with svc, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        statuses = [(await call(http, project, "flaky", "work")).status_code for _ in range(18)]
        assert statuses == [500] * 18
        started = time.monotonic()
        r = await call(http, project, "flaky", "work")
        assert time.monotonic() - started < 0.5
        assert r.status_code == 503, r.text
        text = r.json()["error"]
        assert "service 'flaky' is failing, calls are refused at once: failing since" in text
        assert "18 of the last 18 calls failed, last: the widget is broken" in text
        assert calls == 18, "the open breaker did not call the service"
        found = samples((await http.get("/metrics")).text)
        assert value(found, "sc_service_breaker_state", project=project, service="flaky") == 2
        broken = False
        await asyncio.sleep(1.1)  # the cooldown: then one probe goes through
        assert (await call(http, project, "flaky", "work")).json() == {"result": "fine"}
        assert (await call(http, project, "flaky", "work")).json() == {"result": "fine"}
        found = samples((await http.get("/metrics")).text)
    labels = {"project": project, "service": "flaky", "function": "work"}
    assert value(found, "sc_function_calls_total", **labels, outcome="error") == 18
    assert value(found, "sc_function_calls_total", **labels, outcome="breaker_open") == 1
    assert value(found, "sc_service_breaker_state", project=project, service="flaky") == 0


async def test_idempotent_functions_are_retried_on_another_instance(gw: RunningGateway, nats_url: str,
                                                                    project: str) -> None:
    hits = {("good", "get"): 0, ("good", "put"): 0, ("bad", "get"): 0, ("bad", "put"): 0}
    good, bad = Mesh("pair", project=project, nats_url=nats_url), Mesh("pair", project=project, nats_url=nats_url)
    for mesh, which in ((good, "good"), (bad, "bad")):
        def answer(func: str, which: str = which) -> str:
            hits[(which, func)] += 1
            if which == "bad":
                raise RuntimeError("this instance lost its disk")
            return "ok"

        @mesh.function(name="get", idempotent=True)
        async def get(params: Any, auth: Any, answer: Any = answer) -> str:
            return str(answer("get"))

        @mesh.function(name="put")
        async def put(params: Any, auth: Any, answer: Any = answer) -> str:
            return str(answer("put"))

    async with good, bad, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        core = gw.gw.core
        await core.directory.refresh(core.nc)
        assert (project, "pair", "get") in core.directory.idempotent
        assert (project, "pair", "put") not in core.directory.idempotent
        gets = [(await call(http, project, "pair", "get")).status_code for _ in range(30)]
        puts = [(await call(http, project, "pair", "put")).status_code for _ in range(30)]
        found = samples((await http.get("/metrics")).text)
    retries = {f: value(found, "sc_function_retries_total", project=project, service="pair", function=f)
               for f in ("get", "put")}
    # NATS picks an instance at random for each attempt: what must hold whatever it picked.
    assert gets.count(200) == hits[("good", "get")] and puts.count(200) == hits[("good", "put")]
    assert puts.count(500) == hits[("bad", "put")] and retries["put"] == 0, "never retried: not idempotent"
    assert retries["get"] == hits[("bad", "get")] - gets.count(500), "every failed attempt but a last one retried"
    assert gets.count(500) < puts.count(500), "retries on another instance hide most failures"
    assert value(found, "sc_service_breaker_state", project=project, service="pair") == 0
