"""Realtime under faults, on the production shape: 3 clustered nats-servers, 2 gateways and 2 db workers
(separate processes, from the CLI), live queries on both gateways. Every acknowledged write is counted
against every delivered event; none may be missing:

- after cuts of 1 to 5 s between a gateway and NATS (its clients stay connected and notice nothing);
- after the change log's leader node is killed;
- after a worker dies right after its commit, before publishing or answering;
- after a resume across 10,000 changes (by cursor and by time), with the socket queue at its default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import pytest

from adapters.registry import create_adapter
from common.errors import SpaceCloudError
from mesh.changelog import stream_info
from tests.realtime_faults.cluster import (
    NatsCluster,
    Proc,
    ProxyThread,
    gateway_proc,
    wait_http,
    worker_proc,
)
from tests.support.changelog import drop_namespace
from tests.support.live import LiveClient
from tests.support.servers import SECRET, free_port
from worker.changelog import EXIT_AFTER_COMMITS_ENV

pytestmark = pytest.mark.slow

ALLOW = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
PG = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres() -> str | None:
    async def probe() -> str | None:
        adapter = create_adapter("postgres", PG, namespace="probe")
        try:
            await adapter.connect()
        except SpaceCloudError:
            return None
        await adapter.close()
        return PG

    return asyncio.run(probe())


@dataclass
class Shape:
    work: Path
    project: str
    config: Path
    cluster: NatsCluster
    proxies: ProxyThread
    gateways: list[tuple[Proc, int]]
    workers: list[Proc]
    db: tuple[str, str]
    extra: list[Proc] = field(default_factory=list)

    def http(self, n: int) -> str:
        return f"http://127.0.0.1:{self.gateways[n][1]}"

    def ws(self, n: int) -> str:
        return f"ws://127.0.0.1:{self.gateways[n][1]}"


@pytest.fixture(scope="module")
def shape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shape]:
    work = tmp_path_factory.mktemp("shape")
    project = "rf" + uuid.uuid4().hex[:8]
    url = _postgres()
    db = ("postgres", url) if url else ("sqlite", str(work / "shape.db"))
    config = work / "config.json"
    config.write_text(json.dumps({
        "projects": [{"id": project, "secret": SECRET, "modules": {"crud": {"db": {
            "type": db[0], "conn": db[1], "collections": {"default": {"rules": ALLOW}}}}}}],
        "gateway": {"dbTimeout": 3, "changeReplicas": 3},
    }))
    cluster = NatsCluster(work)
    proxies = ProxyThread()
    shape = Shape(work, project, config, cluster, proxies, [], [], db)
    try:
        cluster.start()
        cut_off = ",".join(f"nats://127.0.0.1:{proxies.add(p)}" for p in cluster.ports)
        shape.workers = [worker_proc(f"worker{i}", work, config, cluster.urls).start() for i in range(2)]
        for i, nats_url in enumerate((cut_off, cluster.urls)):
            port = free_port()
            shape.gateways.append((gateway_proc(f"gateway{i}", work, config, nats_url, port).start(), port))
        for proc, port in shape.gateways:
            wait_http(port, proc)
        yield shape
    finally:
        for proc in [p for p, _ in shape.gateways] + shape.workers + shape.extra:
            proc.stop()
        proxies.stop()
        cluster.stop()
        if db[0] == "postgres":
            asyncio.run(drop_namespace("postgres", db[1], project))


@contextlib.asynccontextmanager
async def watchers(shape: Shape, col: str) -> AsyncIterator[list[LiveClient]]:
    """Two live queries on each gateway, on everything in `col`."""
    clients = [await LiveClient.connect(shape.ws(n % 2), shape.project) for n in range(4)]
    try:
        for lc in clients:
            ack = await lc.subscribe("q", col, "db", {})
            assert ack["ack"] is True, ack
        yield clients
    finally:
        for lc in clients:
            await lc.close()


class Writer:
    """Inserts documents through one gateway and keeps those acknowledged."""

    def __init__(self, base: str, project: str, col: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=10)
        self.path = f"/v1/api/{project}/crud/db/{col}/create"
        self.acked: set[str] = set()
        self.failed = 0
        self.n = 0

    async def write(self, count: int, pause: float = 0.02) -> None:
        for _ in range(count):
            self.n += 1
            doc_id = f"d{self.n:05d}"
            try:
                r = await self.http.post(self.path, json={"doc": {"id": doc_id, "n": self.n}})
                if r.status_code == 200:
                    self.acked.add(doc_id)
                else:
                    self.failed += 1
            except httpx.HTTPError:
                self.failed += 1
            await asyncio.sleep(pause)

    async def close(self) -> None:
        await self.http.aclose()


async def delivered(clients: list[LiveClient], ids: set[str], timeout: float = 40.0) -> None:
    """Every one of `ids` reaches every client; else the assertion says how many each missed."""
    with contextlib.suppress(AssertionError):
        for lc in clients:
            await lc.until(lambda lc=lc: ids <= set(lc.snapshot("q")), timeout=timeout)
    missing = [len(ids - set(lc.snapshot("q"))) for lc in clients]
    assert missing == [0] * len(clients), f"missing per client: {missing} of {len(ids)}"


def col() -> str:
    return "c" + uuid.uuid4().hex[:10]


async def test_a_gateway_cut_off_nats_for_1_to_5_seconds_misses_nothing(shape: Shape) -> None:
    c = col()
    writer = Writer(shape.http(1), shape.project, c)  # writes go through the gateway that keeps its link
    try:
        async with watchers(shape, c) as clients:
            writing = asyncio.create_task(writer.write(500))
            for seconds in (1.0, 5.0, 2.5):
                await asyncio.sleep(1.0)
                shape.proxies.cut()
                await asyncio.sleep(seconds)
                shape.proxies.resume()
            await writing
            assert len(writer.acked) > 400 and writer.failed == 0
            await delivered(clients, writer.acked)
            assert not any(lc.closed.done() for lc in clients), "the clients noticed nothing"
    finally:
        await writer.close()


async def test_killing_the_change_logs_leader_loses_nothing(shape: Shape) -> None:
    nc = await nats.connect(servers=shape.cluster.urls.split(","))
    try:
        info = await stream_info(nc)
        assert info is not None
        assert info["config"]["num_replicas"] == 3, "gateway.changeReplicas: 3 on a cluster of 3"
        leader = int(str((info.get("cluster") or {}).get("leader"))[1:])
    finally:
        await nc.close()
    c = col()
    writer = Writer(shape.http(1), shape.project, c)
    try:
        async with watchers(shape, c) as clients:
            writing = asyncio.create_task(writer.write(300))
            await asyncio.sleep(1.5)
            shape.cluster.nodes[leader].kill()
            await writing
            await delivered(clients, writer.acked)
            assert len(writer.acked) > 200
    finally:
        await writer.close()
        shape.cluster.restart(leader)


async def test_a_worker_killed_right_after_its_commit_loses_nothing(shape: Shape) -> None:
    dying = worker_proc("dying", shape.work, shape.config, shape.cluster.urls, {EXIT_AFTER_COMMITS_ENV: "40"})
    shape.extra.append(dying.start())
    c = col()
    writer = Writer(shape.http(1), shape.project, c)
    try:
        async with watchers(shape, c) as clients:
            await writer.write(150)
            for _ in range(100):
                if not dying.alive:
                    break
                await asyncio.sleep(0.05)
            assert not dying.alive and dying.proc is not None and dying.proc.returncode == 70, dying.tail()
            # what the database holds, acknowledged or not (the write it died after was committed, unanswered)
            r = await writer.http.post(f"/v1/api/{shape.project}/crud/db/{c}/read", json={"find": {}})
            committed = {d["id"] for d in r.json()["result"]}
            assert writer.acked <= committed and len(committed - writer.acked) >= 1
            await delivered(clients, committed)
    finally:
        await writer.close()


async def test_a_resume_across_10000_changes(shape: Shape) -> None:
    c = col()
    http = httpx.AsyncClient(base_url=shape.http(1), timeout=30)
    try:
        by_cursor = await LiveClient.connect(shape.ws(0), shape.project)
        by_time = await LiveClient.connect(shape.ws(0), shape.project)
        ack = await by_cursor.subscribe("q", c, "db", {})
        await by_time.subscribe("q", c, "db", {})
        cursor, since = ack["cursor"], by_time.last_time["q"]
        await by_cursor.close()
        await by_time.close()
        ids: set[str] = set()
        for batch in range(20):
            docs = [{"id": f"r{batch:02d}{k:03d}", "n": k} for k in range(500)]
            r = await http.post(f"/v1/api/{shape.project}/crud/db/{c}/create", json={"op": "all", "doc": docs})
            assert r.status_code == 200, r.text
            ids.update(str(d["id"]) for d in docs)
        clients = []
        for options in ({"cursor": cursor}, {"resumeFrom": since}):
            lc = await LiveClient.connect(shape.ws(0), shape.project)
            clients.append(lc)
            ack = await lc.subscribe("q", c, "db", {}, **options)
            assert ack["ack"] is True and ack.get("resumed") is True, ack
        try:
            await delivered(clients, ids, timeout=60)
            assert not any(lc.closed.done() for lc in clients), "no slow-consumer close (4008)"
        finally:
            for lc in clients:
                await lc.close()
    finally:
        await http.aclose()
