"""A service instance keeps nats.micro's contract: `$SRV.STATS` tells the true processing time and errors,
while requests are still handled concurrently."""

from __future__ import annotations

import asyncio
import json
import uuid

from nats.micro.service import ServiceInfo, ServiceStats

from common.errors import BadRequest, SpaceCloudError
from mesh import subjects
from mesh.connect import connect, disconnect
from mesh.messages import Call
from mesh.requester import Requester
from mesh.service import FunctionService

PAUSE = 0.05


async def test_stats_report_processing_time_errors_and_calls_run_concurrently(nats_url: str) -> None:
    project, name = "p" + uuid.uuid4().hex[:8], "svc" + uuid.uuid4().hex[:6]
    both_in = asyncio.Event()
    waiting = 0

    async def slow(params: object, auth: object) -> str:
        nonlocal waiting
        waiting += 1
        if waiting == 2:
            both_in.set()
        await asyncio.wait_for(both_in.wait(), 5)  # only returns if the two calls run at the same time
        await asyncio.sleep(PAUSE)
        return "ok"

    async def bad(params: object, auth: object) -> None:
        raise BadRequest("no such thing")

    nc = await connect(nats_url, name="stats-test")
    svc = FunctionService(nc, project=project, name=name, functions={"slow": slow, "bad": bad})
    await svc.start()
    requester = Requester(nc)
    await requester.start()
    try:
        call = Call({"x": 1}, None).encode()
        results = await asyncio.gather(*(requester.request(subjects.fn(project, name, "slow"), call, 5)
                                         for _ in range(2)))
        assert len(results) == 2
        try:
            await requester.request(subjects.fn(project, name, "bad"), call, 5)
        except SpaceCloudError as exc:
            assert (exc.status, exc.message) == (400, "no such thing")
        else:
            raise AssertionError("the error did not come back")

        reply = await nc.request(f"$SRV.STATS.{name}", b"", timeout=2)
        stats = ServiceStats.from_dict(json.loads(reply.data))
        by_name = {e.name: e for e in stats.endpoints}
        assert by_name["slow"].num_requests == 2 and by_name["slow"].num_errors == 0
        assert by_name["slow"].processing_time >= 2 * PAUSE * 1e9
        assert by_name["bad"].num_requests == 1 and by_name["bad"].num_errors == 1
        assert by_name["bad"].last_error == "400 no such thing"

        reply = await nc.request(f"$SRV.INFO.{name}", b"", timeout=2)
        info = ServiceInfo.from_dict(json.loads(reply.data))
        assert info.id == svc.id and info.metadata["project"] == project
        assert {e.name: e.subject for e in info.endpoints} == {
            "slow": subjects.fn(project, name, "slow"), "bad": subjects.fn(project, name, "bad")}
        ping = json.loads((await nc.request(f"$SRV.PING.{name}.{svc.id}", b"", timeout=2)).data)
        assert ping["type"] == "io.nats.micro.v1.ping_response" and ping["id"] == svc.id
    finally:
        await svc.stop(drain_timeout=1)
        await disconnect(nc)
