"""One matrix: the same scenarios over HTTP, the WebSocket and gRPC, on every database.

Each transport does what Space Cloud's clients do with it: HTTP has CRUD and calls, the WebSocket live
queries and services, gRPC all of them. A scenario runs on every transport that has it and must give
the same statuses and the same messages (the HTTP ones, which are checked against fixed expectations).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
import pytest

from gateway import tokens
from gateway.grpc.stubs import pb
from sdk import Mesh
from tests.grpc.support import Grpc, LiveStream, grpc_for, js, result
from tests.support.live import LiveClient
from tests.support.servers import SECRET
from tests.support.stack import Stack, database_params, stack

OWNER = {"rule": "match", "eval": "==", "type": "string", "f2": "args.auth.id"}
OWNED = {"create": {**OWNER, "f1": "args.doc.userId"}, "read": {**OWNER, "f1": "args.find.userId"},
         "update": {**OWNER, "f1": "args.find.userId"}, "delete": {**OWNER, "f1": "args.find.userId"}}
FUNCTIONS = {"enabled": True, "services": {"calc": {"functions": {
    "add": {"rule": {"rule": "authenticated"}}, "forbidden": {"rule": {"rule": "deny"}}}}}}


class Live(Protocol):
    async def subscribe(self, qid: str, col: str, where: dict[str, Any]) -> tuple[bool, str]: ...
    def snapshot(self, qid: str) -> dict[str, dict[str, Any]]: ...
    async def close(self) -> None: ...


class Transport(Protocol):
    """What a scenario asks of a transport; `None` where the transport does not have it."""

    async def crud(self, kind: str, col: str, body: dict[str, Any], token: str) -> tuple[int, Any]: ...
    async def call(self, service: str, func: str, params: Any, token: str) -> tuple[int, Any]: ...
    async def live(self, token: str) -> Live: ...


@dataclass
class Http:
    st: Stack

    async def crud(self, kind: str, col: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
        return _http(await self.st.http.post(self.st.crud(col, kind), json=body, headers=_auth(token)))

    async def call(self, service: str, func: str, params: Any, token: str) -> tuple[int, Any]:
        r = await self.st.http.post(f"/v1/api/{self.st.project}/functions/{service}/{func}",
                                    json={"params": params, "timeout": 5000}, headers=_auth(token))
        return _http(r)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _http(r: httpx.Response) -> tuple[int, Any]:
    body = r.json()
    return r.status_code, body.get("result") if r.status_code == 200 else body["error"]


@dataclass
class WsLive:
    client: LiveClient
    alias: str

    async def subscribe(self, qid: str, col: str, where: dict[str, Any]) -> tuple[bool, str]:
        ack = await self.client.subscribe(qid, col, self.alias, where)
        return bool(ack["ack"]), str(ack.get("error") or "")

    def snapshot(self, qid: str) -> dict[str, dict[str, Any]]:
        return self.client.snapshot(qid)

    async def close(self) -> None:
        await self.client.close()


@dataclass
class WebSocket:
    st: Stack

    async def live(self, token: str) -> Live:
        return WsLive(await LiveClient.connect(self.st.gw.ws_url, self.st.project, token), self.st.alias)


@dataclass
class GrpcLive:
    stream: LiveStream

    async def subscribe(self, qid: str, col: str, where: dict[str, Any]) -> tuple[bool, str]:
        ack = await self.stream.subscribe(qid, col, where)
        return ack.ack, ack.error

    def snapshot(self, qid: str) -> dict[str, dict[str, Any]]:
        return self.stream.snapshot(qid)

    async def close(self) -> None:
        await self.stream.close()


@dataclass
class Gr:
    st: Stack
    rpc: Grpc

    def meta(self, col: str, token: str) -> pb.Meta:
        return pb.Meta(project=self.st.project, dbType=self.st.alias, col=col, token=token)

    async def crud(self, kind: str, col: str, body: dict[str, Any], token: str) -> tuple[int, Any]:
        s, meta, op = self.rpc.stub, self.meta(col, token), str(body.get("op", ""))
        find = js(body["find"]) if "find" in body else b""
        if kind == "create":
            r = await s.Create(pb.CreateRequest(document=js(body["doc"]), operation=op, meta=meta))
        elif kind == "read":
            r = await s.Read(pb.ReadRequest(find=find, operation=op, meta=meta))
        elif kind == "update":
            r = await s.Update(pb.UpdateRequest(find=find, operation=op, update=js(body["update"]), meta=meta))
        else:
            r = await s.Delete(pb.DeleteRequest(find=find, operation=op, meta=meta))
        return (200, result(r)) if r.status == 200 else (r.status, r.error)

    async def call(self, service: str, func: str, params: Any, token: str) -> tuple[int, Any]:
        r = await self.rpc.stub.Call(pb.FunctionsRequest(service=service, function=func, params=js(params), timeout=5,
                                                         token=token, project=self.st.project))
        return (200, result(r)) if r.status == 200 else (r.status, r.error)

    async def live(self, token: str) -> Live:
        return GrpcLive(LiveStream(self.rpc.stub, self.st.project, self.st.alias, token))


@dataclass
class Env:
    st: Stack
    transport: Any
    col: str

    def token(self, uid: str) -> str:
        return tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=self.st.project, ttl=600)


TRANSPORTS: dict[str, Callable[[Stack, Grpc], Any]] = {
    "http": lambda st, rpc: Http(st), "websocket": lambda st, rpc: WebSocket(st), "grpc": lambda st, rpc: Gr(st, rpc),
}


def matrix(*transports: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("transport", transports)


@pytest.fixture(params=database_params())
async def env(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Env]:
    col = "m" + uuid.uuid4().hex[:10]
    cols = {col: {"isRealtimeEnabled": True, "rules": OWNED}}
    async with (
        stack(request.param, tmp_path, nats_url, collections=cols, functions=FUNCTIONS) as st,
        grpc_for(st.gw) as rpc,
    ):
        name = request.node.callspec.params["transport"]
        yield Env(st, TRANSPORTS[name](st, rpc), col)


@matrix("http", "grpc")
async def test_crud_with_rules(env: Env, transport: str) -> None:
    t, c, i = env.transport, env.col, env.st.id
    ann, bob = env.token("ann"), env.token("bob")
    doc = {i: "a1", "userId": "ann", "n": 1}
    assert await t.crud("create", c, {"op": "one", "doc": doc}, ann) == (200, None)  # writes answer no result
    status, error = await t.crud("create", c, {"op": "one", "doc": {i: "b1", "userId": "ann"}}, bob)
    assert status == 403 and error
    assert await t.crud("read", c, {"op": "all", "find": {"userId": "ann"}}, ann) == (200, [doc])
    status, error = await t.crud("read", c, {"op": "all", "find": {"userId": "ann"}}, bob)
    assert status == 403 and error
    assert (await t.crud("read", c, {"op": "all", "find": {"userId": "ann"}}, ""))[0] == 401
    assert (await t.crud("read", c, {"op": "all", "find": {"userId": "ann"}}, "forged.token.here"))[0] == 401
    assert (await t.crud("update", c, {"op": "all", "find": {"userId": "ann"}, "update": {"$inc": {"n": 1}}},
                         ann))[0] == 200
    assert (await t.crud("update", c, {"op": "all", "find": {"userId": "ann"}, "update": {"$set": {"n": 0}}},
                         bob))[0] == 403
    assert await t.crud("read", c, {"op": "one", "find": {"userId": "ann", i: "a1"}}, ann) == (200, {**doc, "n": 2})
    assert (await t.crud("delete", c, {"op": "all", "find": {"userId": "ann"}}, bob))[0] == 403
    assert (await t.crud("delete", c, {"op": "all", "find": {"userId": "ann"}}, ann))[0] == 200
    assert await t.crud("read", c, {"op": "count", "find": {"userId": "ann"}}, ann) == (200, 0)


@matrix("http", "websocket", "grpc")
async def test_a_bad_request_is_400_with_the_same_message(env: Env, transport: str) -> None:
    ann, bad = env.token("ann"), {"userId": "ann", "n": {"$bogus": 1}}
    reference = await Http(env.st).crud("read", env.col, {"op": "all", "find": bad}, ann)
    assert reference[0] == 400 and "$bogus" in reference[1]
    if transport == "websocket":
        live = await env.transport.live(ann)
        try:
            assert await live.subscribe("q", env.col, bad) == (False, reference[1])
        finally:
            await live.close()
    else:
        assert await env.transport.crud("read", env.col, {"op": "all", "find": bad}, ann) == reference
        empty = {"op": "all", "find": {}, "update": {}}
        reference = await Http(env.st).crud("update", env.col, empty, ann)
        assert reference[0] == 400 and "update" in reference[1]
        assert await env.transport.crud("update", env.col, empty, ann) == reference


@pytest.fixture
async def calc(env: Env, nats_url: str) -> AsyncIterator[Mesh]:
    svc = Mesh("calc", project=env.st.project, nats_url=nats_url)

    @svc.function
    async def add(params: dict[str, Any], auth: Any) -> Any:
        return {"sum": params["a"] + params["b"], "by": auth["id"]}

    @svc.function
    async def forbidden(params: Any, auth: Any) -> str:
        return "never"

    async with svc:
        yield svc


@matrix("http", "grpc")
async def test_a_function_call(env: Env, transport: str, calc: Mesh) -> None:
    t, ann = env.transport, env.token("ann")
    assert await t.call("calc", "add", {"a": 1, "b": 2}, ann) == (200, {"sum": 3, "by": "ann"})
    assert (await t.call("calc", "add", {"a": 1, "b": 2}, ""))[0] in (401, 403)
    assert (await t.call("calc", "forbidden", {}, ann))[0] == 403
    assert (await t.call("calc", "nothing", {}, ann))[0] == 403  # no rule: deny


@matrix("websocket", "grpc")
async def test_a_live_query_sees_insert_update_delete(env: Env, transport: str) -> None:
    c, i, http = env.col, env.st.id, Http(env.st)
    ann = env.token("ann")
    await http.crud("create", c, {"op": "one", "doc": {i: "0", "userId": "ann", "v": 0}}, ann)
    live = await env.transport.live(ann)
    spy = await env.transport.live(env.token("bob"))
    try:
        assert await live.subscribe("q", c, {"userId": "ann"}) == (True, "")
        ok, error = await spy.subscribe("q", c, {"userId": "ann"})
        assert not ok and error
        await until(lambda: set(live.snapshot("q")) == {"0"})
        await http.crud("create", c, {"op": "one", "doc": {i: "1", "userId": "ann", "v": 1}}, ann)
        await until(lambda: "1" in live.snapshot("q"))
        await http.crud("update", c, {"op": "all", "find": {"userId": "ann", i: "1"}, "update": {"$set": {"v": 2}}},
                        ann)
        await until(lambda: live.snapshot("q").get("1", {}).get("v") == 2)
        await http.crud("delete", c, {"op": "all", "find": {"userId": "ann", i: "0"}}, ann)
        await until(lambda: set(live.snapshot("q")) == {"1"})
        assert orjson.dumps(live.snapshot("q")["1"], option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            {i: "1", "userId": "ann", "v": 2}, option=orjson.OPT_SORT_KEYS)
    finally:
        for lq in (live, spy):
            with contextlib.suppress(Exception):
                await lq.close()


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
