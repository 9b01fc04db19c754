"""Services registered over the WebSocket (`service-register` / `service-request`), as the JS client does."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import websockets

from mesh.discovery import list_services
from sdk import Mesh
from tests.support.servers import RunningGateway, gateway, project_config

ALLOW = {"rule": "allow"}


@pytest.fixture
def project() -> str:
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture
async def gw(nats_url: str, project: str) -> AsyncIterator[RunningGateway]:
    functions = {
        "services": {
            "echo": {"functions": {"default": {"rule": ALLOW}}, "register": ALLOW},
            "locked": {"functions": {"default": {"rule": ALLOW}}},
        }
    }
    async with gateway(project_config(project, functions=functions), nats_url) as running:
        yield running


class SocketService:
    """A service written against the wire protocol only (what the JS client's `Service` sends)."""

    def __init__(self, ws: Any, name: str) -> None:
        self.ws = ws
        self.name = name
        self.calls = 0

    async def register(self, project: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"service": self.name, "token": ""}
        if project:
            data["project"] = project
        await self.ws.send(orjson.dumps({"id": "reg1", "type": "service-register", "data": data}).decode())
        reply = orjson.loads(await self.ws.recv())
        assert reply["id"] == "reg1" and reply["type"] == "service-register"
        return dict(reply["data"])

    async def serve(self) -> None:
        async for raw in self.ws:
            frame = orjson.loads(raw)
            if frame["type"] != "service-request":
                continue
            assert frame["id"] == ""
            data = frame["data"]
            self.calls += 1
            if data["func"] == "fail":
                reply = {"id": data["id"], "error": "socket service says no"}
            else:
                reply = {"id": data["id"], "params": {"from": "socket", "func": data["func"], "got": data["params"]}}
            await self.ws.send(orjson.dumps({"id": uuid.uuid4().hex, "type": "service-request",
                                             "data": reply}).decode())


async def call(gw: RunningGateway, project: str, service: str, func: str, params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        return await http.post(f"/v1/api/{project}/functions/{service}/{func}", json={"params": params,
                                                                                        "timeout": 3000})


async def test_sockets_of_one_owner_share_calls(gw: RunningGateway, project: str) -> None:
    async with (websockets.connect(f"{gw.ws_url}/v1/api/{project}/socket/json") as ws1,
                websockets.connect(f"{gw.ws_url}/v1/api/{project}/socket/json") as ws2):
        one, two = SocketService(ws1, "echo"), SocketService(ws2, "echo")
        assert await one.register() == {"ack": True}
        assert await two.register() == {"ack": True}
        tasks = [asyncio.create_task(one.serve()), asyncio.create_task(two.serve())]
        for i in range(40):
            r = await call(gw, project, "echo", "say", {"i": i})
            assert r.status_code == 200 and r.json()["result"]["from"] == "socket", r.text
        assert one.calls > 0 and two.calls > 0 and one.calls + two.calls == 40
        r = await call(gw, project, "echo", "fail", {})
        assert r.status_code == 500 and r.json() == {"error": "socket service says no"}
        services = await list_services(gw.gw.core.nc, project)
        kinds = sorted(i["kind"] for s in services if s["name"] == "echo" for i in s["instances"])
        assert kinds == ["websocket", "websocket"]
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_socket_cannot_take_over_a_python_service(gw: RunningGateway, project: str, nats_url: str) -> None:
    py = Mesh("echo", project=project, nats_url=nats_url)
    seen: list[Any] = []

    @py.function
    async def say(params: Any, auth: Any) -> dict[str, Any]:
        seen.append(auth)
        return {"from": "python"}

    async with py, websockets.connect(f"{gw.ws_url}/v1/api/{project}/socket/json") as ws:
        svc = SocketService(ws, "echo")
        reply = await svc.register()
        assert reply["ack"] is False and "already served" in reply["error"]
        serving = asyncio.create_task(svc.serve())
        for i in range(20):
            r = await call(gw, project, "echo", "say", {"i": i})
            assert r.status_code == 200 and r.json()["result"] == {"from": "python"}
        assert svc.calls == 0, "the socket saw other callers' calls"
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def test_a_listed_service_does_not_fall_back_to_the_default_register_rule(nats_url: str, project: str) -> None:
    functions = {"services": {
        "default": {"functions": {"default": {"rule": ALLOW}}, "register": ALLOW},
        "billing": {"functions": {"charge": {"rule": ALLOW}}},  # listed, no register rule: never over a socket
        "checker": {"functions": {"default": {"rule": ALLOW}}, "register": ALLOW},
        "guarded": {"functions": {"default": {"rule": {"rule": "func", "service": "checker", "func": "ok"}}}},
    }}
    async with gateway(project_config(project, functions=functions), nats_url) as running, \
            websockets.connect(f"{running.ws_url}/v1/api/{project}/socket/json") as ws:
        reply = await SocketService(ws, "billing").register()
        assert reply["ack"] is False and "billing" in reply["error"]
        # `checker` answers a func rule: even its own register rule cannot hand it to a socket
        reply = await SocketService(ws, "checker").register()
        assert reply["ack"] is False and "func rules" in reply["error"]
        assert await SocketService(ws, "unlisted").register() == {"ack": True}  # default's rule applies


async def test_functions_disappear_when_the_socket_closes(gw: RunningGateway, project: str) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/socket/json") as ws:  # legacy path, project in data
        svc = SocketService(ws, "echo")
        assert await svc.register(project) == {"ack": True}
        serving = asyncio.create_task(svc.serve())
        r = await call(gw, project, "echo", "hello", [1, 2])
        assert r.json() == {"result": {"from": "socket", "func": "hello", "got": [1, 2]}}
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    for _ in range(50):
        r = await call(gw, project, "echo", "hello", None)
        if r.status_code == 503:
            break
        await asyncio.sleep(0.05)
    assert r.status_code == 503


async def test_registering_needs_a_register_rule(gw: RunningGateway, project: str) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/{project}/socket/json") as ws:
        reply = await SocketService(ws, "locked").register()
        assert reply["ack"] is False
        assert "register" in reply["error"]


async def test_bad_frames_get_clear_errors(gw: RunningGateway, project: str) -> None:
    async with websockets.connect(f"{gw.ws_url}/v1/api/{project}/socket/json") as ws:
        await ws.send("{oops")
        assert orjson.loads(await ws.recv())["data"]["error"] == "malformed JSON frame"
        await ws.send(orjson.dumps({"id": "x", "type": "teleport", "data": {}}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["id"] == "x" and reply["data"]["ack"] is False and "teleport" in reply["data"]["error"]
        await ws.send(orjson.dumps({"id": "y", "type": "service-register", "data": {"service": "bad name"}}).decode())
        reply = orjson.loads(await ws.recv())
        assert reply["data"]["ack"] is False and "invalid service name" in reply["data"]["error"]
