"""The service runtime and the requester: deadlines and request ids travel as headers; work whose caller
gave up is dropped; a stuck handler is cancelled and answered 504 in time; a full instance says so."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from nats.aio.msg import Msg

from common.errors import ServiceUnavailable, Timeout
from mesh import context, subjects
from mesh.codec import pack
from mesh.connect import connect, disconnect
from mesh.messages import REQUEST_ID_HEADER, TIMEOUT_HEADER, Call, decode_timeout, encode_timeout
from mesh.requester import Requester
from mesh.service import FunctionService, MicroService


def test_the_timeout_header_is_a_budget_in_milliseconds() -> None:
    assert encode_timeout(10) == "10000" and encode_timeout(0.0001) == "1"
    assert decode_timeout("250") == 0.25
    for bad in (None, "", "0", "-5", "1.5", "soon"):
        assert decode_timeout(bad) is None


def test_request_ids_are_unique_and_incoming_ones_are_checked() -> None:
    assert context.new_request_id() != context.new_request_id()
    assert context.sane_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in ("", "has space", "quote\"", "x" * 129, "new\nline"):
        assert context.sane_request_id(bad) is None


async def test_headers_reach_the_handler_and_a_stuck_one_is_answered_504_in_time(nats_url: str) -> None:
    nc = await connect(nats_url, name="deadline-test")
    seen: dict[str, Any] = {}
    cancelled = asyncio.Event()

    async def look(msg: Msg) -> bytes:
        seen["headers"] = dict(msg.headers or {})
        seen["rid"] = context.request_id()
        seen["remaining"] = context.remaining()
        return pack("ok")

    async def stuck(msg: Msg) -> bytes:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return b""

    subject = "t." + uuid.uuid4().hex
    svc = MicroService(nc, name="dl", queue_group="dl")
    svc.add_endpoint("look", subject + ".look", look)
    svc.add_endpoint("stuck", subject + ".stuck", stuck, timeout_text=lambda m, s: f"stuck took over {s:.2g}s")
    await svc.start()
    req = Requester(nc)
    await req.start()
    try:
        token = context.set_request_id("req-42")
        try:
            await req.request(subject + ".look", b"", 2.0)
        finally:
            context.REQUEST_ID.reset(token)
        assert seen["headers"][TIMEOUT_HEADER] == "2000" and seen["headers"][REQUEST_ID_HEADER] == "req-42"
        assert seen["rid"] == "req-42"
        assert 1.0 < seen["remaining"] <= 1.8, "the handler sees the budget less the answer margin"

        with pytest.raises(Timeout) as exc:
            await req.request(subject + ".stuck", b"", 0.5)
        assert exc.value.message == "stuck took over 0.45s"
        await asyncio.wait_for(cancelled.wait(), 2)
        stats = json.loads((await nc.request(f"$SRV.STATS.dl.{svc.id}", b"", timeout=2)).data)
        [ep] = [e for e in stats["endpoints"] if e["name"] == "stuck"]
        assert ep["num_errors"] == 1 and ep["last_error"].startswith("504 ")
    finally:
        await svc.stop(drain_timeout=1)
        await disconnect(nc)


async def test_work_is_dropped_when_its_deadline_passed_while_waiting_and_a_full_instance_refuses(
    nats_url: str,
) -> None:
    nc = await connect(nats_url, name="deadline-test-2")
    project, name = "p" + uuid.uuid4().hex[:8], "busy"
    gate = asyncio.Event()
    ran: list[Any] = []

    async def slow(params: Any, auth: Any) -> Any:
        ran.append(params)
        await gate.wait()
        return params

    svc = FunctionService(nc, project=project, name=name, functions={"slow": slow}, max_concurrency=1,
                          max_pending=1)
    await svc.start()
    req = Requester(nc)
    await req.start()
    subject = subjects.fn(project, name, "slow")
    try:
        first = asyncio.create_task(req.request(subject, Call(1, None).encode(), 5))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(req.request(subject, Call(2, None).encode(), 0.3))
        await asyncio.sleep(0.1)
        with pytest.raises(ServiceUnavailable) as full:
            await req.request(subject, Call(3, None).encode(), 5)
        assert "is busy: 1 requests running and 1 waiting" in full.value.message
        with pytest.raises(Timeout):
            await waiting
        gate.set()
        assert await first == pack(1)
        await asyncio.sleep(0.1)
        assert ran == [1], "the call whose caller gave up while it waited never ran"
        assert svc._endpoints[0].expired == 1 and svc._endpoints[0].rejected == 1
    finally:
        await svc.stop(drain_timeout=1)
        await disconnect(nc)


async def test_idempotent_functions_are_advertised(nats_url: str) -> None:
    nc = await connect(nats_url, name="idem-test")
    name = "idem" + uuid.uuid4().hex[:6]

    async def f(params: Any, auth: Any) -> None:
        return None

    svc = FunctionService(nc, project="p", name=name, functions={"get": f, "put": f}, idempotent={"get"})
    await svc.start()
    try:
        info = json.loads((await nc.request(f"$SRV.INFO.{name}", b"", timeout=2)).data)
        meta = {e["name"]: e["metadata"] for e in info["endpoints"]}
        assert meta == {"get": {"idempotent": "true"}, "put": {}}
    finally:
        await svc.stop(drain_timeout=1)
        await disconnect(nc)
