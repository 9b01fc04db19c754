"""Live queries against a scripted WebSocket server: the merge, acks, resume, reset, refusal, unsubscribe.

The real server is exercised in test_live.py; here each frame is chosen by the test, so orders the
real server rarely produces (a feed right behind its ack, an old change arriving late, a reset)
are pinned down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import common.errors as errors
from sdk.client import API, Cache, Feed, cond

from .conftest import next_snapshot


class FakeServer:
    def __init__(self) -> None:
        self.frames: asyncio.Queue[tuple[ServerConnection, dict[str, Any]]] = asyncio.Queue()
        self.connections: list[ServerConnection] = []
        self.server: Server | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                await self.frames.put((ws, orjson.loads(raw)))

    async def next(self, type_: str | None = None) -> tuple[ServerConnection, dict[str, Any]]:
        ws, frame = await asyncio.wait_for(self.frames.get(), 10)
        if type_ is not None:
            assert frame["type"] == type_, frame
        return ws, frame

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def send(ws: ServerConnection, rid: str, type_: str, data: dict[str, Any]) -> None:
    await ws.send(orjson.dumps({"id": rid, "type": type_, "data": data}).decode())


def row(qid: str, doc_id: str, type_: str, payload: dict[str, Any] | None, time: int) -> dict[str, Any]:
    return {"id": qid, "docId": doc_id, "type": type_, "payload": payload, "time": time, "group": "todos",
            "dbType": "sqlite"}


async def ack(ws: ServerConnection, frame: dict[str, Any], docs: list[dict[str, Any]], time: int,
              **extra: Any) -> None:
    qid = frame["data"]["id"]
    await send(ws, frame["id"], "realtime-subscribe", {"group": "todos", "id": qid, "ack": True, "error": "",
                                                       "docs": docs, "time": time, **extra})


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    f = FakeServer()
    async with serve(f.handler, "127.0.0.1", 0) as server:
        f.server = server
        yield f


@pytest.fixture
async def api(fake: FakeServer) -> AsyncIterator[API]:
    async with API("proj", fake.url, reconnect_min=0.02, reconnect_max=0.1, timeout=5) as client:
        client.set_token("tok")
        yield client


# -- the cache alone -----------------------------------------------------------------------------

def feed(doc_id: str, type_: str, time: int, **payload: Any) -> Feed:
    f = Feed.from_wire(row("q", doc_id, type_, {"id": doc_id, **payload} if payload else None, time))
    assert f is not None
    return f


def test_cache_orders_by_time_and_keeps_tombstones() -> None:
    c = Cache()
    assert c.apply(feed("1", "initial", 10, n=1)) and c.apply(feed("2", "initial", 10, n=2))
    assert c.apply(feed("1", "update", 20, n=10))
    assert not c.apply(feed("1", "update", 15, n=5)), "an older change must not win"
    assert c.get("1") == {"id": "1", "n": 10}
    assert c.apply(feed("1", "update", 20, n=11)), "ties are applied"
    assert not c.apply(feed("1", "update", 20, n=11)), "the same change again changes nothing"
    assert c.apply(feed("2", "delete", 30))
    assert not c.apply(feed("2", "insert", 25, n=2)), "a late insert cannot resurrect a deleted doc"
    assert not c.apply(feed("2", "delete", 31)), "deleting a tombstone changes nothing visible"
    assert c.apply(feed("2", "insert", 40, n=3))
    assert c.apply(feed("3", "insert", 41, n=4))
    assert c.docs() == [{"id": "1", "n": 11}, {"id": "2", "n": 3}, {"id": "3", "n": 4}]
    assert c.max_time == 41 and len(c) == 3
    assert not c.apply(feed("9", "delete", 50)), "deleting an unknown doc changes nothing"
    c.clear()
    assert c.docs() == [] and c.max_time == 0


def test_feed_from_wire_rejects_what_is_not_a_feed() -> None:
    assert Feed.from_wire({"type": "update", "docId": True, "time": 1}) is None
    assert Feed.from_wire({"type": "weird", "docId": "1"}) is None
    assert Feed.from_wire([]) is None
    f = Feed.from_wire({"type": "update", "docId": 7.0, "time": 3, "payload": {"id": 7}})
    assert f is not None and f.doc_id == "7" and f.time == 3


# -- subscriptions over a scripted socket ----------------------------------------------------------

async def test_snapshots_follow_the_feeds(api: API, fake: FakeServer) -> None:
    sub = api.db("sqlite").live_query("todos").where(cond("u", "==", "me")).subscribe()
    start = asyncio.create_task(sub.start())
    ws, frame = await fake.next("realtime-subscribe")
    data = frame["data"]
    assert data["group"] == "todos" and data["dbType"] == "sqlite" and data["project"] == "proj"
    assert data["where"] == {"u": "me"} and data["token"] == "tok"
    assert data["options"] == {"changesOnly": False} and "resumeFrom" not in data["options"]
    qid = data["id"]
    await ack(ws, frame, [row(qid, "1", "initial", {"id": "1", "t": "a"}, 100)], time=150)
    # a feed right behind the ack is applied after it
    await send(ws, "", "realtime-feed", row(qid, "2", "insert", {"id": "2", "t": "b"}, 160))
    await start
    first = await next_snapshot(sub)
    assert (first.type, first.docs, first.changed) == ("initial", [{"id": "1", "t": "a"}], None)
    ins = await next_snapshot(sub)
    assert (ins.type, ins.changed) == ("insert", {"id": "2", "t": "b"})
    assert ins.docs == [{"id": "1", "t": "a"}, {"id": "2", "t": "b"}]
    await send(ws, "", "realtime-feed", row(qid, "1", "update", {"id": "1", "t": "old"}, 90))  # older: ignored
    await send(ws, "", "realtime-feed", row("another-query", "5", "insert", {"id": "5"}, 170))  # not ours
    await send(ws, "", "realtime-feed", row(qid, "1", "delete", {"id": "1"}, 180))
    gone = await next_snapshot(sub)
    assert (gone.type, gone.docs, gone.changed) == ("delete", [{"id": "2", "t": "b"}], {"id": "1", "t": "a"})
    assert sub.snapshot == [{"id": "2", "t": "b"}]

    closing = asyncio.create_task(sub.aclose())
    ws, frame = await fake.next("realtime-unsubscribe")
    assert frame["data"]["id"] == qid and frame["data"]["group"] == "todos"
    await send(ws, frame["id"], "realtime-unsubscribe", {"group": "todos", "id": qid, "ack": True})
    await closing
    with pytest.raises(StopAsyncIteration):
        await next_snapshot(sub)


async def test_resume_after_a_drop_and_reset_when_the_server_cannot(api: API, fake: FakeServer) -> None:
    sub = api.db("sqlite").live_query("todos").subscribe()
    start = asyncio.create_task(sub.start())
    ws, frame = await fake.next("realtime-subscribe")
    qid = frame["data"]["id"]
    assert "where" not in frame["data"]
    await ack(ws, frame, [row(qid, "1", "initial", {"id": "1"}, 100)], time=500)
    await start
    assert (await next_snapshot(sub)).docs == [{"id": "1"}]
    await send(ws, "", "realtime-feed", row(qid, "2", "insert", {"id": "2"}, 700))
    assert (await next_snapshot(sub)).type == "insert"

    await ws.close(1012, "restart")  # the server drops us: the client comes back and resumes
    ws, frame = await fake.next("realtime-subscribe")
    assert frame["data"]["id"] == qid and frame["data"]["options"]["resumeFrom"] == 700
    await ack(ws, frame, [], time=900, resumed=True)
    await send(ws, "", "realtime-feed", row(qid, "2", "update", {"id": "2"}, 700))  # replayed: nothing new
    await send(ws, "", "realtime-feed", row(qid, "3", "update", {"id": "3"}, 800))  # missed: upserted
    await send(ws, "", "realtime-feed", row(qid, "1", "delete", {"id": "1"}, 850))  # missed: removed
    up = await next_snapshot(sub)
    assert (up.type, up.changed, up.docs) == ("update", {"id": "3"}, [{"id": "1"}, {"id": "2"}, {"id": "3"}])
    down = await next_snapshot(sub)
    assert (down.type, down.docs) == ("delete", [{"id": "2"}, {"id": "3"}])
    assert (sub.resumes, sub.resets) == (1, 0)

    # dropped again before anything newer than the resumed ack: the replay may be incomplete
    await ws.close(1012, "restart")
    ws, frame = await fake.next("realtime-subscribe")
    assert frame["data"]["options"]["resumeFrom"] == 700, "a replay cut short is asked for again"
    await ack(ws, frame, [], time=1000, resumed=True)
    await send(ws, "", "realtime-feed", row(qid, "4", "insert", {"id": "4"}, 1050))  # live: after the ack
    assert (await next_snapshot(sub)).changed == {"id": "4"}
    assert (sub.resumes, sub.resets) == (2, 0)

    await ws.close(1012, "restart")
    ws, frame = await fake.next("realtime-subscribe")
    assert frame["data"]["options"]["resumeFrom"] == 1050, "after a live change, from the last time seen"
    await ack(ws, frame, [row(qid, "7", "initial", {"id": "7"}, 1000)], time=1100, reset=True)
    fresh = await next_snapshot(sub)
    assert (fresh.type, fresh.docs) == ("initial", [{"id": "7"}]), "a reset replaces the cache"
    assert (sub.resumes, sub.resets) == (2, 1)
    assert api.reconnects == 3
    await sub.aclose()


async def test_refusals_raise_the_servers_message(api: API, fake: FakeServer) -> None:
    live = api.db("sqlite").live_query("todos")
    start = asyncio.create_task(live.subscribe().start())
    ws, frame = await fake.next("realtime-subscribe")
    await send(ws, frame["id"], "realtime-subscribe", {"group": "todos", "id": frame["data"]["id"], "ack": False,
                                                       "error": "Auth: no rule", "docs": None})
    with pytest.raises(errors.SpaceCloudError, match="Auth: no rule"):
        await start

    # refused later (say, after a reconnect, the rules changed): the iteration raises it
    sub = live.subscribe()
    start = asyncio.create_task(sub.start())
    ws, frame = await fake.next("realtime-subscribe")
    await ack(ws, frame, [], time=10)
    await start
    assert (await next_snapshot(sub)).docs == []
    await ws.close()
    ws, frame = await fake.next("realtime-subscribe")
    await send(ws, frame["id"], "realtime-subscribe", {"group": "todos", "id": frame["data"]["id"], "ack": False,
                                                       "error": "forbidden now", "status": 403, "docs": None})
    with pytest.raises(errors.Forbidden, match="forbidden now"):
        await next_snapshot(sub)
    assert sub.closed


async def test_no_answer_is_a_timeout_and_no_server_is_unavailable(fake: FakeServer) -> None:
    async with API("proj", fake.url, timeout=0.3) as api:
        with pytest.raises(errors.Timeout):
            await api.db("sqlite").live_query("todos").subscribe().start()
    async with API("proj", "http://127.0.0.1:9", timeout=0.3, reconnect_min=0.05) as api:
        with pytest.raises(errors.ServiceUnavailable):
            await api.db("sqlite").live_query("todos").subscribe().start()


async def test_breaking_out_of_async_for_unsubscribes(api: API, fake: FakeServer) -> None:
    async def consume() -> list[str]:
        seen = []
        async for snap in api.db("sqlite").live_query("todos"):
            seen.append(snap.type)
            break
        return seen

    task = asyncio.create_task(consume())
    ws, frame = await fake.next("realtime-subscribe")
    await ack(ws, frame, [], time=1)
    assert await task == ["initial"]
    gc.collect()
    ws, frame = await fake.next("realtime-unsubscribe")
    assert frame["data"]["group"] == "todos"


async def test_changes_only_and_a_slow_consumer(fake: FakeServer) -> None:
    async with API("proj", fake.url, max_pending=3) as api:
        sub = api.db("sqlite").live_query("todos").options(changes_only=True).subscribe()
        start = asyncio.create_task(sub.start())
        ws, frame = await fake.next("realtime-subscribe")
        assert frame["data"]["options"] == {"changesOnly": True, "skipInitial": True}
        qid = frame["data"]["id"]
        await ack(ws, frame, [], time=1)
        await start
        for i in range(5):
            await send(ws, "", "realtime-feed", row(qid, str(i), "insert", {"id": str(i)}, 10 + i))
        for _ in range(50):
            if sub.dropped == 2:
                break
            await asyncio.sleep(0.02)
        assert sub.dropped == 2, "the oldest two were dropped for the slow consumer"
        got = [await next_snapshot(sub) for _ in range(3)]
        assert [(s.type, s.docs, s.changed) for s in got] == [("insert", [], {"id": str(i)}) for i in (2, 3, 4)]
        assert sub.snapshot == [], "changes_only keeps no documents"
