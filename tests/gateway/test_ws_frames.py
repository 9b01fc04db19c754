"""WebSocket frames written straight to the transport (gateway.wsraw): one write per socket per loop turn,
frames unchanged on the wire, and the ASGI path where that cannot be done (compression)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
import pytest
import websockets
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.live.frames import SharedFeed
from gateway.ws import Client
from gateway.wsraw import ReceiveQueue, text_frame
from tests.support.servers import RunningGateway, gateway, project_config

T = TypeVar("T")


def _run(gen: Generator[None, None, T]) -> T:
    try:
        while True:
            next(gen)
    except StopIteration as done:
        return cast(T, done.value)


def parse(data: bytes) -> list[Frame]:
    """The frames in `data`, read by websockets' own parser (as a client reads them: unmasked)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out = []
    while not _run(reader.at_eof()):
        out.append(_run(Frame.parse(reader.read_exact, mask=False)))
    return out


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_text_frames_are_what_websockets_reads(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    [frame] = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_one_feed_is_encoded_once_per_live_query_id() -> None:
    feed = SharedFeed("1", "insert", {"id": "1", "t": "x"}, 5, "c", "db")
    a = feed.ws_frame("q")
    assert feed.ws_frame("q") is a and feed.ws_text("q") is feed.ws_text("q")
    assert orjson.loads(parse(feed.ws_frame("other"))[0].data)["data"]["id"] == "other"
    assert orjson.loads(parse(a)[0].data) == {"id": "", "type": "realtime-feed", "data": {
        "id": "q", "docId": "1", "type": "insert", "payload": {"id": "1", "t": "x"}, "time": 5, "group": "c",
        "dbType": "db"}}


async def test_the_lean_receive_queue_keeps_order_and_wakes_its_reader() -> None:
    q = ReceiveQueue()
    q.put_nowait(1)
    waiting = asyncio.create_task(q.get())
    assert await waiting == 1 and q.empty()
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.put_nowait(2)
    q.put_nowait(3)
    assert await asyncio.wait_for(second, 1) == 2 and q.qsize() == 1 and await q.get() == 3


async def test_an_accepted_socket_lets_go_of_the_handshake(gw: RunningGateway) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/p/socket/json", compression=None) as ws:
        client = await _client(gw, ws)
        proto = client._out._proto
        assert proto.request is None and proto.response is None and proto.scope["headers"] == []
        assert isinstance(proto.queue, ReceiveQueue)
        for n in range(20):  # and it still reads every request
            await ws.send(orjson.dumps({"id": f"r{n}", "type": "nope", "data": {}}).decode())
        got = [orjson.loads(await asyncio.wait_for(ws.recv(), 5))["id"] for _ in range(20)]
        assert got == [f"r{n}" for n in range(20)]


@pytest.fixture
async def gw(tmp_path: Path, nats_url: str) -> AsyncIterator[RunningGateway]:
    async with gateway(project_config("p"), nats_url, base=tmp_path) as running:
        yield running


async def _client(gw: RunningGateway, ws: Any) -> Client:
    for _ in range(200):
        if gw.gw.clients:
            [client] = gw.gw.clients.values()
            return client
        await asyncio.sleep(0.01)
    raise AssertionError("no client")


async def test_frames_of_one_loop_turn_go_out_in_one_write(gw: RunningGateway) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/p/socket/json", compression=None) as ws:
        client = await _client(gw, ws)
        raw = client._out._raw
        assert raw is not None, "uvicorn without compression: frames go to the transport"
        transport = raw._proto.transport
        writes: list[bytes] = []
        real = transport.write

        def counting(data: bytes) -> None:
            writes.append(data)
            real(data)

        transport.write = counting
        try:
            feed = SharedFeed("d", "update", {"n": 1}, 7, "c", "db")
            for n in range(5):
                client.push("note", {"n": n})
            client.send_feed("q", feed)
            got = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(6)]
        finally:
            transport.write = real
        assert len(writes) == 1, "six frames, one write"
        assert [g["data"].get("n") for g in got[:5]] == [0, 1, 2, 3, 4]
        assert got[5]["type"] == "realtime-feed" and got[5]["data"]["docId"] == "d"


async def test_requests_are_answered_through_the_transport_and_close_codes_arrive(gw: RunningGateway) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/p/socket/json", compression=None) as ws:
        await ws.send(orjson.dumps({"id": "r1", "type": "nope", "data": {}}).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply["id"] == "r1" and reply["data"]["ack"] is False
        client = await _client(gw, ws)
        client.push("last", {})
        client.close(4401, "token expired")
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "last", "what was queued goes first"
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4401


async def test_with_compression_frames_go_through_asgi(tmp_path: Path, nats_url: str) -> None:
    async with (gateway(project_config("p"), nats_url, base=tmp_path, ws_compression=True) as gw,
                websockets.connect(f"{gw.ws_url}/v1/api/p/socket/json") as ws):
        client = await _client(gw, ws)
        assert client._out._raw is None
        for n in range(3):
            client.push("note", {"n": n})
        client.send_feed("q", SharedFeed("d", "insert", {}, 1, "c", "db"))
        got = [orjson.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(4)]
        assert [g["type"] for g in got] == ["note", "note", "note", "realtime-feed"]
