"""A service is callable by anyone as soon as its start() returns, however slowly its subscriptions
travel to the server (nats-py writes a flush's PING ahead of commands its flusher has not sent yet)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sdk import Mesh
from tests.support.faults import LaggingProxy


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"))


async def test_a_service_answers_the_first_call_after_start_even_when_its_subscriptions_lag(nats_url: str) -> None:
    project = "p" + uuid.uuid4().hex[:10]
    upstream = urlsplit(nats_url)
    assert upstream.port is not None
    async with LaggingProxy("127.0.0.1", upstream.port, marker=b"SUB ", delay=0.3) as proxy:
        svc = Mesh("ready", project=project, nats_url=_via(nats_url, proxy.port))

        @svc.function
        async def ping(params: Any, auth: Any) -> str:
            return "pong"

        async with Mesh("caller", project=project, nats_url=nats_url) as caller, svc:
            assert proxy.held > 0  # the service's subscriptions did come late
            assert await caller.call("ready", "ping") == "pong"
