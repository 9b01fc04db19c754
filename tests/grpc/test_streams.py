"""The `RealTime` and `Service` streams: the same live queries and service bridge as the WebSocket, in
Space Cloud's gRPC messages (acks and feeds carry the live query's id; empty `where`/`options` mean {})."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from gateway import tokens
from gateway.grpc.peers import RealtimePeer
from gateway.grpc.stubs import pb
from gateway.live.frames import SharedFeed
from mesh.discovery import list_services
from tests.grpc.support import Grpc, LiveStream, ServiceStream, grpc_for, js, result, wait_for
from tests.support.servers import SECRET
from tests.support.stack import Stack, stack

ALLOW_ALL = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
OWNER_READ = {"rule": "match", "eval": "==", "type": "string", "f1": "args.find.userId", "f2": "args.auth.id"}
FUNCTIONS = {"enabled": True, "services": {
    "echo": {"functions": {"default": {"rule": {"rule": "allow"}}}, "register": {"rule": "allow"}},
    "locked": {"functions": {"default": {"rule": {"rule": "allow"}}}},
}}


@dataclass
class Env:
    st: Stack
    rpc: Grpc
    todos: str

    def token(self, uid: str) -> str:
        return tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=self.st.project, ttl=600)

    def live(self, token: str = "") -> LiveStream:
        return LiveStream(self.rpc.stub, self.st.project, self.st.alias, token)

    async def write(self, col: str, op: str, body: dict[str, Any]) -> None:
        r = await self.st.http.post(self.st.crud(col, op), json=body)
        assert r.status_code == 200, r.text


@pytest.fixture
async def env(tmp_path: Path, nats_url: str) -> AsyncIterator[Env]:
    todos = "t" + uuid.uuid4().hex[:10]
    cols = {"default": {"rules": ALLOW_ALL}, todos: {"rules": {**ALLOW_ALL, "read": OWNER_READ}}}
    async with (
        stack("sqlite", tmp_path, nats_url, collections=cols, functions=FUNCTIONS) as st,
        grpc_for(st.gw) as rpc,
    ):
        yield Env(st, rpc, todos)


def col() -> str:
    return "c" + uuid.uuid4().hex[:10]


async def test_live_query_initial_and_every_change(env: Env) -> None:
    c, i = col(), env.st.id
    await env.write(c, "create", {"op": "all", "doc": [{i: "1", "u": "a", "n": 1}, {i: "2", "u": "b", "n": 2}]})
    lq = env.live()
    try:
        # the official client 0.9.1 sends no options at all: empty bytes are {}
        ack = await lq.subscribe("q1", c, {"u": "a"})
        assert (ack.id, ack.group, ack.ack, ack.error) == ("q1", c, True, "")
        [initial] = ack.feedData
        assert (initial.queryId, initial.docId, initial.type, initial.group, initial.dbType) == (
            "q1", "1", "initial", c, env.st.alias)
        assert orjson.loads(initial.payload) == {i: "1", "u": "a", "n": 1} and initial.timeStamp > 0
        assert ack.time > 0 and not ack.reset and not ack.resumed

        await env.write(c, "create", {"op": "one", "doc": {i: "3", "u": "a", "n": 3}})
        await lq.until(lambda: "3" in lq.snapshot("q1"))
        await env.write(c, "update", {"op": "all", "find": {"u": "a"}, "update": {"$inc": {"n": 10}}})
        await lq.until(lambda: sorted(d["n"] for d in lq.snapshot("q1").values()) == [11, 13])
        await env.write(c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"u": "z"}}})  # moves out
        await env.write(c, "update", {"op": "one", "find": {i: "2"}, "update": {"$set": {"u": "a"}}})  # moves in
        await env.write(c, "delete", {"op": "all", "find": {i: "3"}})
        await lq.until(lambda: set(lq.snapshot("q1")) == {"2"})
        kinds = [(f.type, f.docId) for f in lq.feeds if f.type != "initial"]
        assert ("insert", "3") in kinds and ("update", "3") in kinds and ("delete", "1") in kinds
        assert ("insert", "2") in kinds and ("delete", "3") in kinds
        every = [r for r in lq.responses if any(f.type != "initial" for f in r.feedData)]
        assert all(r.id == "q1" and r.ack and r.group == c and len(r.feedData) == 1 for r in every)
        delete = next(f for f in lq.feeds if f.type == "delete" and f.docId == "1")
        assert orjson.loads(delete.payload) == {i: "1"}

        unack = await lq.unsubscribe("q1", c)
        assert (unack.id, unack.ack, list(unack.feedData)) == ("q1", True, [])
        await env.write(c, "create", {"op": "one", "doc": {i: "4", "u": "a"}})
        await asyncio.sleep(0.3)
        assert "4" not in lq.snapshot("q1")
    finally:
        await lq.close()


async def test_options_and_bad_subscriptions(env: Env) -> None:
    c, i = col(), env.st.id
    await env.write(c, "create", {"op": "one", "doc": {i: "1", "n": 1}})
    lq = env.live()
    try:
        ack = await lq.subscribe("skip", c, {}, options=js({"skipInitial": True}))
        assert ack.ack and list(ack.feedData) == []
        for where, options, needle in (
            (b"{broken", b"", "`where` must be JSON text"),
            (js([1, 2]), b"", "`where` must be a JSON object"),
            (js({"n": {"$bogus": 2}}), b"", "$bogus"),
            (js({}), b"[]", "`options` must be a JSON object"),
            (js({}), js({"resumeFrom": "yesterday"}), "resumeFrom"),
        ):
            nack = await lq.subscribe("bad", c, raw_where=where, options=options)
            assert (nack.id, nack.ack) == ("bad", False) and needle in nack.error, nack.error
        nack = await lq.subscribe("", c, {})
        assert not nack.ack and "`id`" in nack.error
        nack = await lq.subscribe("q", "no such!", {})
        assert not nack.ack
        await env.write(c, "create", {"op": "one", "doc": {i: "2", "n": 2}})
        await lq.until(lambda: "2" in lq.snapshot("skip"))
    finally:
        await lq.close()


async def test_the_read_rule_decides_per_subscriber_and_per_frame(env: Env) -> None:
    todos, i = env.todos, env.st.id
    alice, bob, anon = env.live(env.token("alice")), env.live(env.token("bob")), env.live()
    try:
        assert (await alice.subscribe("mine", todos, {"userId": "alice"})).ack
        nack = await bob.subscribe("spy", todos, {"userId": "alice"})
        assert not nack.ack and nack.error and list(nack.feedData) == []
        assert not (await anon.subscribe("spy", todos, {"userId": "alice"})).ack
        bad = await anon.subscribe("spy", todos, {"userId": "alice"}, token="garbage")
        assert not bad.ack and bad.error
        assert (await bob.subscribe("mine", todos, {"userId": "bob"})).ack
        await env.write(todos, "create", {"op": "one", "doc": {i: "t1", "userId": "alice"}})
        await env.write(todos, "create", {"op": "one", "doc": {i: "t2", "userId": "bob"}})
        await alice.until(lambda: "t1" in alice.snapshot("mine"))
        await bob.until(lambda: "t2" in bob.snapshot("mine"))
        assert set(alice.snapshot("mine")) == {"t1"} and set(bob.snapshot("mine")) == {"t2"}
        # every frame passes the rule as configured now
        cfg = env.st.gw.gw.core.config
        cfg.projects[env.st.project].crud[env.st.alias].collections[todos].rules["read"] = {"rule": "deny"}
        await env.write(todos, "create", {"op": "one", "doc": {i: "t3", "userId": "alice"}})
        await asyncio.sleep(0.3)
        assert "t3" not in alice.snapshot("mine")
    finally:
        for lq in (alice, bob, anon):
            await lq.close()


async def test_resume_from_the_last_event_seen(env: Env) -> None:
    c, i = col(), env.st.id
    await env.write(c, "create", {"op": "all", "doc": [{i: "1", "n": 1}, {i: "2", "n": 2}, {i: "3", "n": 3}]})
    first = env.live()
    await first.subscribe("q", c, {"n": {"$lt": 10}})
    await env.write(c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"n": 0}}})
    await first.until(lambda: first.snapshot("q")["1"]["n"] == 0)
    await first.close()
    # while the client is away
    await env.write(c, "create", {"op": "one", "doc": {i: "4", "n": 4}})
    await env.write(c, "update", {"op": "one", "find": {i: "2"}, "update": {"$set": {"n": 5}}})
    await env.write(c, "delete", {"op": "one", "find": {i: "3"}})
    await env.write(c, "update", {"op": "one", "find": {i: "1"}, "update": {"$set": {"n": 50}}})
    again = env.live()
    try:
        again.rows = first.rows
        ack = await again.subscribe("q", c, {"n": {"$lt": 10}}, options=js({"resumeFrom": first.last_time("q")}))
        assert ack.ack and ack.resumed and not ack.reset and list(ack.feedData) == []
        await again.until(lambda: set(again.snapshot("q")) == {"2", "4"})
        assert again.snapshot("q")["2"]["n"] == 5
        await env.write(c, "create", {"op": "one", "doc": {i: "6", "n": 6}})
        await again.until(lambda: "6" in again.snapshot("q"))
    finally:
        await again.close()
    late = env.live()
    try:
        ack = await late.subscribe("q", c, {"n": {"$lt": 10}},
                                   options=js({"resumeFrom": int(time.time() * 1000) - 3 * 3600 * 1000}))
        assert ack.ack and ack.reset and sorted(f.docId for f in ack.feedData) == ["2", "4", "6"]
    finally:
        await late.close()


async def test_ending_the_stream_drops_its_live_queries(env: Env) -> None:
    lq = env.live()
    await lq.subscribe("q", col(), {})
    assert len(env.st.gw.gw.live.by_client) == 1
    await lq.end_requests()  # half-close, as Space Cloud: the stream ends and its queries go
    assert await asyncio.wait_for(lq.ended, 5) == grpc.StatusCode.OK
    await wait_for(lambda: not env.st.gw.gw.live.by_client)
    other = env.live()
    await other.subscribe("q", col(), {})
    await other.close()  # a client that goes away (cancels) too
    await wait_for(lambda: not env.st.gw.gw.live.by_client)


async def test_a_slow_stream_is_ended_and_slows_no_one(tmp_path: Path, nats_url: str) -> None:
    async with (
        stack("sqlite", tmp_path, nats_url, collections={"default": {"rules": ALLOW_ALL}},
              settings={"ws_queue": 64}) as st,
        grpc_for(st.gw) as rpc,
    ):
        c, i = col(), st.id
        fast = LiveStream(rpc.stub, st.project, st.alias)
        await fast.subscribe("q", c, {})
        # a client that subscribes, then reads nothing: HTTP/2 flow control stops the writes, the queue overflows
        requests: asyncio.Queue[pb.RealTimeRequest] = asyncio.Queue()

        async def send() -> AsyncIterator[pb.RealTimeRequest]:
            while True:
                yield await requests.get()

        slow_call = rpc.stub.RealTime(send())
        await requests.put(pb.RealTimeRequest(dbType=st.alias, project=st.project, group=c,
                                              type="realtime-subscribe", id="q", where=b"{}"))
        first = await slow_call.read()
        assert isinstance(first, pb.RealTimeResponse) and first.ack
        big = "x" * 40_000
        try:
            for n in range(12):
                r = await st.http.post(st.crud(c, "create"),
                                       json={"op": "all", "doc": [{i: f"{n}-{k}", "blob": big} for k in range(20)]})
                assert r.status_code == 200
            await fast.until(lambda: len(fast.snapshot("q")) == 240 or fast.ended.done(), timeout=30)
            assert not fast.ended.done() and len(fast.snapshot("q")) == 240
            await wait_for(lambda: len(st.gw.gw.live.by_client) == 1, timeout=10)  # the slow one is forgotten
            # it gets nothing more than what was already in flight when it stopped reading
            received = 1
            with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
                while await asyncio.wait_for(slow_call.read(), 2) is not grpc.aio.EOF:
                    received += 1
            assert received < 240 - 64
        finally:
            slow_call.cancel()
            await fast.close()


async def test_a_live_query_ends_when_its_token_expires(env: Env) -> None:
    short = tokens.issue({"id": "alice", "role": "user"}, secret=SECRET, project=env.st.project, ttl=1)
    lq = env.live(short)
    try:
        assert (await lq.subscribe("mine", env.todos, {"userId": "alice"})).ack
        assert await asyncio.wait_for(lq.ended, 5) == grpc.StatusCode.UNAUTHENTICATED
        assert "token expired" in lq.end_details
        await wait_for(lambda: not env.st.gw.gw.live.by_client)
    finally:
        await lq.close()


def test_a_peer_closed_by_the_manager_ends_with_a_status() -> None:
    async def run() -> None:
        peer = RealtimePeer(max_queue=4)
        peer.send_feed("q", SharedFeed("1", "insert", {"id": "1"}, 5, "c", "db"))
        peer.close(4401, "token expired: sign in again and resubscribe")
        peer.send_feed("q", SharedFeed("2", "insert", {"id": "2"}, 6, "c", "db"))  # after close: dropped
        sent = [m async for m in peer.outgoing()]
        assert [f.docId for m in sent for f in m.feedData] == ["1"]
        assert peer.ended_by == (grpc.StatusCode.UNAUTHENTICATED, "token expired: sign in again and resubscribe")
        overflow = RealtimePeer(max_queue=2)
        for n in range(3):
            overflow.send_feed("q", SharedFeed(str(n), "insert", {}, n, "c", "db"))
        assert [m async for m in overflow.outgoing()] == []
        assert overflow.ended_by is not None and overflow.ended_by[0] == grpc.StatusCode.RESOURCE_EXHAUSTED

    asyncio.run(run())


async def test_a_service_registered_over_the_stream_is_called_over_http_and_grpc(env: Env) -> None:
    svc = ServiceStream(env.rpc.stub, env.st.project)

    async def say(params: Any, auth: Any) -> Any:
        return {"said": params, "auth": auth}

    async def boom(params: Any, auth: Any) -> Any:
        raise RuntimeError("the flux capacitor")

    svc.functions.update(say=say, boom=boom)
    try:
        assert await svc.register("echo") == {"ack": True}
        r = await env.st.http.post(f"/v1/api/{env.st.project}/functions/echo/say", json={"params": {"m": 1}})
        assert r.status_code == 200 and r.json() == {"result": {"said": {"m": 1}, "auth": {}}}
        [pushed] = svc.calls
        assert pushed.type == "service-request" and pushed.function == "say" and pushed.id
        assert orjson.loads(pushed.auth) == {} and orjson.loads(pushed.params) == {"m": 1}
        token = env.token("ann")
        r2 = await env.rpc.stub.Call(pb.FunctionsRequest(service="echo", function="say", params=js("hi"), timeout=5,
                                                         project=env.st.project, token=token))
        assert r2.status == 200 and result(r2)["said"] == "hi" and result(r2)["auth"]["id"] == "ann"
        r = await env.st.http.post(f"/v1/api/{env.st.project}/functions/echo/boom", json={"params": {}})
        assert r.status_code == 500 and "flux capacitor" in r.json()["error"]
        r = await env.st.http.post(f"/v1/api/{env.st.project}/functions/echo/nothing", json={"params": {}})
        assert r.status_code == 500 and "Function not registered" in r.json()["error"]
        listed = {s["name"]: s for s in await list_services(env.st.gw.gw.core.nc, env.st.project)}
        assert listed["echo"]["instances"] and all(x["kind"] == "grpc"
                                                   for x in listed["echo"]["instances"])
        # unregistration is the end of the stream
        await svc.end_requests()
        assert await asyncio.wait_for(svc.ended, 5) == grpc.StatusCode.OK
        for _ in range(50):
            r = await env.st.http.post(f"/v1/api/{env.st.project}/functions/echo/say", json={"params": {}})
            if r.status_code == 503:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 503
    finally:
        await svc.close()


async def test_registration_follows_the_register_rule(env: Env) -> None:
    svc = ServiceStream(env.rpc.stub, env.st.project)
    try:
        nack = await svc.register("locked")
        assert nack["ack"] is False and "not allowed" in nack["error"]
        nack = await svc.register("bad name!")
        assert nack["ack"] is False
        r = await env.st.http.post(f"/v1/api/{env.st.project}/functions/locked/x", json={"params": {}})
        assert r.status_code == 503
        other = ServiceStream(env.rpc.stub, "")
        try:
            assert (await other.register("echo"))["ack"] is False  # no project
        finally:
            await other.close()
    finally:
        await svc.close()
