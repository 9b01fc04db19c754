"""Service-to-service calls with `Mesh`: load balancing, concurrency, drain, failover, errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.errors import InternalError, NotFound, ServiceUnavailable, Timeout
from mesh import devstate
from mesh.discovery import list_services
from sdk import Mesh, MeshNotStarted

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project() -> str:
    return "p" + uuid.uuid4().hex[:10]


def start_proc(nats_url: str, project: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.services", "--nats", nats_url, "--project", project],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def procs(nats_url: str, project: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [start_proc(nats_url, project), start_proc(nats_url, project)]
    try:
        yield started
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
async def caller(nats_url: str, project: str) -> AsyncIterator[Mesh]:
    async with Mesh("caller", project=project, nats_url=nats_url) as m:
        yield m


async def wait_instances(caller: Mesh, service: str, count: int) -> None:
    for _ in range(200):
        found = [s for s in await list_services(caller._nc, caller.project, window=0.05) if s["name"] == service]  # type: ignore[arg-type]
        if found and len(found[0]["instances"]) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} instances of {service} did not appear")


async def test_two_instances_share_the_load(procs: list[subprocess.Popen[bytes]], caller: Mesh) -> None:
    await wait_instances(caller, "proc", 2)
    pids = {(await caller.call("proc", "whoami"))["pid"] for _ in range(60)}
    assert pids == {p.pid for p in procs}


async def test_calls_keep_succeeding_when_an_instance_is_killed(
    procs: list[subprocess.Popen[bytes]], caller: Mesh
) -> None:
    await wait_instances(caller, "proc", 2)
    for _ in range(10):
        await caller.call("proc", "whoami")
    procs[0].kill()
    procs[0].wait()
    answered_by = set()
    for i in range(30):
        assert await caller.call("proc", "echo", {"i": i}, timeout=5) == {"i": i}
        answered_by.add((await caller.call("proc", "whoami", timeout=5))["pid"])
    assert answered_by == {procs[1].pid}


async def test_sigterm_drains_in_flight_calls(procs: list[subprocess.Popen[bytes]], caller: Mesh) -> None:
    await wait_instances(caller, "proc", 2)
    calls = [asyncio.create_task(caller.call("proc", "slow", {"seconds": 0.8}, timeout=10)) for _ in range(6)]
    await asyncio.sleep(0.3)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    results = await asyncio.gather(*calls)
    assert all(r["slept"] == 0.8 for r in results)
    for p in procs:
        assert p.wait(10) == 0
    with pytest.raises(ServiceUnavailable):
        await caller.call("proc", "whoami")


async def test_slow_call_does_not_block_a_fast_one(nats_url: str, project: str, caller: Mesh) -> None:
    release = asyncio.Event()
    svc = Mesh("conc", project=project, nats_url=nats_url, max_concurrency=4)

    @svc.function
    async def wait_for_release(params: Any, auth: Any) -> str:
        await asyncio.wait_for(release.wait(), 5)
        return "released"

    @svc.function
    async def release_it(params: Any, auth: Any) -> str:
        release.set()
        return "done"

    async with svc:
        slow = asyncio.create_task(caller.call("conc", "wait_for_release", timeout=6))
        await asyncio.sleep(0.1)
        # With serial handling this call would queue behind the first and both would time out.
        assert await caller.call("conc", "release_it", timeout=2) == "done"
        assert await slow == "released"


async def test_errors_cross_the_mesh(nats_url: str, project: str, caller: Mesh) -> None:
    svc = Mesh("errs", project=project, nats_url=nats_url)

    @svc.function
    async def boom(params: Any, auth: Any) -> None:
        raise ValueError("the widget is broken")

    @svc.function
    async def missing(params: Any, auth: Any) -> None:
        raise NotFound("no such widget")

    @svc.function
    async def sleepy(params: Any, auth: Any) -> None:
        await asyncio.sleep(2)

    async with svc:
        with pytest.raises(InternalError, match="the widget is broken"):
            await caller.call("errs", "boom")
        with pytest.raises(NotFound, match="no such widget"):
            await caller.call("errs", "missing")
        with pytest.raises(Timeout):
            await caller.call("errs", "sleepy", timeout=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ServiceUnavailable, match="no instance"):
        await caller.call("errs", "boom", timeout=10)
    assert loop.time() - started < 5, "no-responders must be reported at once, not after the timeout"


async def test_auth_reaches_the_function(nats_url: str, project: str, caller: Mesh) -> None:
    svc = Mesh("authy", project=project, nats_url=nats_url)

    @svc.function
    async def who(params: Any, auth: Any) -> Any:
        return auth

    async with svc:
        assert await caller.call("authy", "who", auth={"id": "u1"}) == {"id": "u1"}


async def test_not_started_is_a_clear_error() -> None:
    m = Mesh("idle", project="x", nats_url="nats://127.0.0.1:1")
    with pytest.raises(MeshNotStarted):
        await m.call("a", "b")


async def test_service_finds_the_dev_server_by_itself(
    nats_url: str, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPACE_CLOUD_HOME", str(tmp_path))
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
    monkeypatch.delenv("SPACE_CLOUD_PROJECT", raising=False)
    devstate.write({"nats_url": nats_url, "project": project}, home=str(tmp_path))
    svc = Mesh("finder")

    @svc.function
    async def ping(params: Any, auth: Any) -> str:
        return "pong"

    async with svc:
        assert svc.project == project
        async with Mesh("c2") as c2:
            assert await c2.call("finder", "ping") == "pong"


async def test_no_nats_url_anywhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPACE_CLOUD_HOME", str(tmp_path))
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
    with pytest.raises(MeshNotStarted, match="space-cloud run"):
        await Mesh("lost").start()


async def test_discovery_lists_functions_and_instances(nats_url: str, project: str, caller: Mesh) -> None:
    a = Mesh("disc", project=project, nats_url=nats_url)
    b = Mesh("disc", project=project, nats_url=nats_url)
    for m in (a, b):

        @m.function
        async def one(params: Any, auth: Any) -> int:
            return 1

        @m.function(name="two")
        async def second(params: Any, auth: Any) -> int:
            return 2

    async with a, b:
        await caller.call("disc", "two")
        services = await list_services(caller._nc, project)  # type: ignore[arg-type]
        disc = next(s for s in services if s["name"] == "disc")
        assert disc["functions"] == ["one", "two"]
        assert {i["id"] for i in disc["instances"]} == {a.instance_id, b.instance_id}
        assert sum(i["requests"] for i in disc["instances"]) >= 1
        other = await list_services(caller._nc, "someone-else")  # type: ignore[arg-type]
        assert all(s["name"] != "disc" for s in other)
