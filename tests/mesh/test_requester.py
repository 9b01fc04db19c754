"""The requester: replies routed from nats-py's read loop, with a working fallback."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest

from common.errors import ServiceUnavailable, Timeout
from mesh.requester import Requester, _Router


async def echo_server(nats_url: str, subject: str) -> Any:
    nc = await nats.connect(nats_url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=echo)
    await nc.flush()
    return nc


@pytest.mark.parametrize("direct", [True, False])
async def test_requests_concurrently_both_ways(nats_url: str, direct: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not direct:
        async def no(self: Requester) -> bool:
            return False

        monkeypatch.setattr(Requester, "_routes_directly", no)
    server = await echo_server(nats_url, f"req.echo.{direct}")
    nc = await nats.connect(nats_url)
    try:
        req = Requester(nc)
        await req.start()
        assert isinstance(req._sub._future, _Router) is direct
        replies = await asyncio.gather(*(req.request(f"req.echo.{direct}", str(i).encode(), 5) for i in range(200)))
        assert replies == [str(i).encode() for i in range(200)]
        assert req._pending == {}
        with pytest.raises(ServiceUnavailable):
            await req.request("req.nobody", b"", 5)
        slow = await nats.connect(nats_url)

        async def never_answer(msg: Any) -> None:
            return None

        await slow.subscribe("req.slow", cb=never_answer)
        await slow.flush()
        with pytest.raises(Timeout):
            await req.request("req.slow", b"", 0.05)
        assert req._pending == {}
        await slow.close()
    finally:
        await nc.close()
        await server.close()
