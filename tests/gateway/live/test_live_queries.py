"""Live queries over the WebSocket: Space Cloud's frames, correct snapshots, across gateways, per-user rules."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway import tokens
from tests.support.live import LiveClient
from tests.support.servers import SECRET, gateway
from tests.support.stack import Stack, database_params, stack

ALLOW_ALL = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
OWNER_READ = {"rule": "match", "eval": "==", "type": "string", "f1": "args.find.userId", "f2": "args.auth.id"}


def collections(todos: str) -> dict[str, Any]:
    return {"default": {"rules": ALLOW_ALL}, todos: {"rules": {**ALLOW_ALL, "read": OWNER_READ}}}


def col() -> str:
    return "c" + uuid.uuid4().hex[:12]


@pytest.fixture(params=database_params())
async def st(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Stack]:
    todos = col()
    async with stack(request.param, tmp_path, nats_url, collections=collections(todos)) as s:
        s.names = {"todos": todos}
        yield s


def token(st: Stack, uid: str) -> str:
    return tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=st.project, ttl=600)


async def write(st: Stack, c: str, op: str, body: dict[str, Any]) -> None:
    r = await st.http.post(st.crud(c, op), json=body)
    assert r.status_code == 200, r.text


async def test_initial_snapshot_and_every_kind_of_change(st: Stack) -> None:
    c, i = col(), st.id
    await write(st, c, "create", {"op": "all", "doc": [{i: "1", "u": "a", "n": 1}, {i: "2", "u": "b", "n": 2}]})
    lc = await LiveClient.connect(st.gw.ws_url, st.project)
    try:
        ack = await lc.subscribe("q1", c, st.alias, {"u": "a"})
        assert ack["ack"] is True and ack["error"] == "" and ack["id"] == "q1" and ack["group"] == c
        [initial] = ack["docs"]
        assert initial["type"] == "initial" and initial["docId"] == "1" and initial["payload"] == {i: "1", "u": "a",
                                                                                                   "n": 1}
        assert initial["group"] == c and initial["dbType"] == st.alias and isinstance(initial["time"], int)

        await write(st, c, "create", {"op": "one", "doc": {i: "3", "u": "a", "n": 3}})
        await write(st, c, "create", {"op": "one", "doc": {i: "4", "u": "b", "n": 4}})  # not in the query
        await lc.until(lambda: "3" in lc.snapshot("q1"))
        # an update by another field: every affected document
        await write(st, c, "update", {"op": "all", "find": {"u": "a"}, "update": {"$inc": {"n": 10}}})
        await lc.until(lambda: sorted(d["n"] for d in lc.snapshot("q1").values()) == [11, 13])
        # moving out of the query is a delete; moving in is an insert
        await write(st, c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"u": "z"}}})
        await write(st, c, "update", {"op": "all", "find": {"u": "b"}, "update": {"$set": {"u": "a"}}})
        await lc.until(lambda: set(lc.snapshot("q1")) == {"2", "3", "4"})
        await write(st, c, "delete", {"op": "all", "find": {"n": {"$gte": 13}}})
        await lc.until(lambda: set(lc.snapshot("q1")) == {"2", "4"})
        kinds = [(f["type"], f["docId"]) for f in lc.feeds if f["type"] != "initial"]
        assert ("insert", "3") in kinds and ("delete", "1") in kinds and ("insert", "2") in kinds
        assert ("delete", "3") in kinds and all(d != "4" or k != "insert" or True for k, d in kinds)
        assert not any(d == "4" and k == "update" for k, d in kinds[:2])
        delete = next(f for f in lc.feeds if f["type"] == "delete" and f["docId"] == "1")
        assert delete["payload"] == {i: "1"}
        # a batch reaches live queries too
        r = await st.http.post(f"/v1/api/{st.project}/crud/{st.alias}/batch", json={"reqs": [
            {"type": "create", "col": c, "op": "one", "doc": {i: "5", "u": "a", "n": 0}},
            {"type": "delete", "col": c, "op": "one", "find": {i: "2"}}]})
        assert r.status_code == 200
        await lc.until(lambda: set(lc.snapshot("q1")) == {"4", "5"})
        # what the client holds is what the database holds
        r = await st.http.post(st.crud(c, "read"), json={"op": "all", "find": {"u": "a"}})
        assert {str(d[i]): d for d in r.json()["result"]} == lc.snapshot("q1")
    finally:
        await lc.close()


async def test_options_skip_initial_changes_only_and_unsubscribe(st: Stack) -> None:
    c, i = col(), st.id
    await write(st, c, "create", {"op": "one", "doc": {i: "1", "k": 1}})
    lc = await LiveClient.connect(st.gw.ws_url, st.project)
    try:
        assert (await lc.subscribe("a", c, st.alias, None, skipInitial=True))["docs"] == []
        assert (await lc.subscribe("b", c, st.alias, {}, changesOnly=True))["docs"] == []
        await write(st, c, "create", {"op": "one", "doc": {i: "2", "k": 2}})
        await lc.until(lambda: {f["id"] for f in lc.feeds} == {"a", "b"})
        # unsubscribe without dbType (as the JS client 0.12 sends it)
        assert await lc.unsubscribe("a", c) == {"group": c, "id": "a", "ack": True}
        assert await lc.unsubscribe("b", c, dbType=st.alias) == {"group": c, "id": "b", "ack": True}
        assert st.gw.gw.live.feeds == {}
        lc.feeds.clear()
        await write(st, c, "create", {"op": "one", "doc": {i: "3", "k": 3}})
        await asyncio.sleep(0.3)
        assert lc.feeds == []
    finally:
        await lc.close()


async def test_rules_per_subscriber(st: Stack) -> None:
    todos, i = st.names["todos"], st.id
    alice = await LiveClient.connect(st.gw.ws_url, st.project, token(st, "alice"))
    bob = await LiveClient.connect(st.gw.ws_url, st.project, token(st, "bob"))
    anon = await LiveClient.connect(st.gw.ws_url, st.project)
    try:
        assert (await alice.subscribe("mine", todos, st.alias, {"userId": "alice"}))["ack"] is True
        nack = await bob.subscribe("spy", todos, st.alias, {"userId": "alice"})
        assert nack["ack"] is False and nack["error"] and nack["docs"] is None
        assert (await anon.subscribe("spy", todos, st.alias, {"userId": "alice"}))["ack"] is False
        assert (await bob.subscribe("mine", todos, st.alias, {"userId": "bob"}))["ack"] is True
        # someone else writes a todo for alice, and bob writes his own
        await write(st, todos, "create", {"op": "one", "doc": {i: "t1", "userId": "alice", "text": "from admin"}})
        await write(st, todos, "create", {"op": "one", "doc": {i: "t2", "userId": "bob", "text": "bob's"}})
        await alice.until(lambda: "t1" in alice.snapshot("mine"))
        await bob.until(lambda: "t2" in bob.snapshot("mine"))
        await asyncio.sleep(0.2)
        assert set(alice.snapshot("mine")) == {"t1"} and set(bob.snapshot("mine")) == {"t2"}
        assert all(f["payload"].get("userId") != "alice" for f in bob.feeds if f["type"] != "delete")
        # the rule is checked on every event: once the config denies reads, nothing more is sent
        cfg = st.gw.gw.core.config
        cfg.projects[st.project].crud[st.alias].collections[todos].rules["read"] = {"rule": "deny"}
        await write(st, todos, "create", {"op": "one", "doc": {i: "t3", "userId": "alice"}})
        await write(st, todos, "create", {"op": "one", "doc": {i: "t4", "userId": "bob"}})
        await asyncio.sleep(0.3)
        assert "t3" not in alice.snapshot("mine") and "t4" not in bob.snapshot("mine")
    finally:
        for lc in (alice, bob, anon):
            await lc.close()


async def test_identical_queries_share_one_match_and_closing_drops_them(st: Stack) -> None:
    c, i = col(), st.id
    clients = [await LiveClient.connect(st.gw.ws_url, st.project) for _ in range(5)]
    try:
        for n, lc in enumerate(clients):
            await lc.subscribe(f"q{n}", c, st.alias, {"k": 1})
        [f] = st.gw.gw.live.feeds.values()
        [query] = f.queries.values()
        assert len(query.subscribers) == 5
        await write(st, c, "create", {"op": "one", "doc": {i: "x", "k": 1}})
        for n, lc in enumerate(clients):
            await lc.until(lambda lc=lc, n=n: "x" in lc.snapshot(f"q{n}"))
    finally:
        for lc in clients:
            await lc.close()
    for _ in range(100):
        if not st.gw.gw.live.feeds:
            break
        await asyncio.sleep(0.02)
    assert st.gw.gw.live.feeds == {} and st.gw.gw.live.by_client == {}


async def test_order_per_document_under_rapid_updates(st: Stack) -> None:
    c, i = col(), st.id
    await write(st, c, "create", {"op": "one", "doc": {i: "d", "n": 0}})
    lc = await LiveClient.connect(st.gw.ws_url, st.project)
    try:
        await lc.subscribe("q", c, st.alias, {})
        await asyncio.gather(*(write(st, c, "update", {"op": "all", "find": {i: "d"}, "update": {"$inc": {"n": 1}}})
                               for _ in range(30)))
        await lc.until(lambda: lc.snapshot("q")["d"]["n"] == 30)
        times = [f["time"] for f in lc.feeds if f["docId"] == "d"]
        assert times == sorted(times), "frames for one document never go back in time"
    finally:
        await lc.close()


async def test_bad_subscriptions_get_a_clear_nack(st: Stack) -> None:
    lc = await LiveClient.connect(st.gw.ws_url, st.project)
    try:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"id": "q", "group": col(), "dbType": "nodb"}, "nodb"),
            ({"id": "q", "group": "bad name", "dbType": st.alias}, "collection"),
            ({"id": "q", "group": col(), "dbType": st.alias, "where": {"$where": "1"}}, "$where"),
            ({"id": "q", "group": col(), "dbType": st.alias, "where": [1]}, "where"),
            ({"id": "q", "group": col(), "dbType": st.alias, "options": {"resumeFrom": "yesterday"}}, "resumeFrom"),
            ({"group": col(), "dbType": st.alias}, "id"),
        ]
        for data, fragment in cases:
            nack = await lc.request("realtime-subscribe", data)
            assert nack["ack"] is False and fragment in nack["error"], (data, nack)
    finally:
        await lc.close()


async def test_writes_on_one_gateway_reach_subscribers_on_another(st: Stack, nats_url: str) -> None:
    assert st.config is not None
    c, i = col(), st.id
    async with gateway(st.config, nats_url) as gw_b:
        on_a = await LiveClient.connect(st.gw.ws_url, st.project)
        on_b = await LiveClient.connect(gw_b.ws_url, st.project)
        try:
            await on_a.subscribe("q", c, st.alias, {})
            await on_b.subscribe("q", c, st.alias, {})
            await write(st, c, "create", {"op": "one", "doc": {i: "1", "via": "A"}})
            import httpx

            async with httpx.AsyncClient(base_url=gw_b.url) as http_b:
                r = await http_b.post(st.crud(c, "create"), json={"op": "one", "doc": {i: "2", "via": "B"}})
                assert r.status_code == 200
            for lc in (on_a, on_b):
                await lc.until(lambda lc=lc: set(lc.snapshot("q")) == {"1", "2"})
        finally:
            await on_a.close()
            await on_b.close()


async def test_slow_consumer_is_disconnected_and_slows_no_one(tmp_path: Path, nats_url: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async with stack("sqlite", tmp_path, nats_url, collections={"default": {"rules": ALLOW_ALL}},
                     settings={"ws_queue": 8}) as st:
        c, i = col(), st.id
        fast = await LiveClient.connect(st.gw.ws_url, st.project)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # no autotuned 32 MB receive buffer
        sock.connect(("127.0.0.1", st.gw.port))
        slow = await LiveClient.connect(st.gw.ws_url, st.project, max_queue=1, sock=sock, compression=None)
        try:
            await fast.subscribe("q", c, st.alias, {})
            await slow.subscribe("q", c, st.alias, {})
            slow.ws.transport.pause_reading()  # reads nothing more: socket buffers fill, then its queue overflows
            big = "x" * 40_000  # 10 MB in all, uncompressed: more than the socket buffers can hide
            for n in range(12):
                await write(st, c, "create", {"op": "all", "doc": [{i: f"{n}-{k}", "blob": big} for k in range(20)]})
            await fast.until(lambda: len(fast.snapshot("q")) == 240, timeout=30)
            for _ in range(100):
                if len(st.gw.gw.clients) == 1:
                    break
                await asyncio.sleep(0.05)
            assert len(st.gw.gw.clients) == 1, "the slow socket was closed"
            assert len(st.gw.gw.live.by_client) == 1, "and its live queries dropped"
            assert any("slow consumer" in r.getMessage() for r in caplog.records)
        finally:
            await fast.close()
            await slow.close()


async def test_socket_closed_while_subscribing_leaves_nothing_behind(st: Stack) -> None:
    c, i = col(), st.id
    await write(st, c, "create", {"op": "all", "doc": [{i: str(n), "n": n} for n in range(200)]})
    for _ in range(5):
        lc = await LiveClient.connect(st.gw.ws_url, st.project)
        frame = {"id": "r", "type": "realtime-subscribe", "data": {"id": "q", "group": c, "dbType": st.alias}}
        await lc.ws.send(orjson.dumps(frame).decode())
        await lc.close()  # before the snapshot read finishes
    for _ in range(100):
        if not st.gw.gw.live.feeds and not st.gw.gw.live.by_client:
            break
        await asyncio.sleep(0.05)
    assert st.gw.gw.live.feeds == {} and st.gw.gw.live.by_client == {}
