"""The bus is not a back door: the embedded nats-server's generated credentials and per-role permissions.

A real nats-server with the config `space-cloud run` generates and the auth callout it runs: a
`service` connection (what a local process gets from the dev-state file) cannot read or send db
requests, listen to another service or to change events, read anyone's replies or use JetStream;
no credentials, no connection. And everything that should work still does under those permissions:
CRUD through the worker, calls (HTTP → service, service → service, → a WebSocket service),
discovery, change events and the JetStream replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
import websockets
from nats.aio.client import Client

from gateway.config import parse
from gateway.live.log import ChangeLogReader
from mesh import devstate, roles
from mesh.busauth import BusAuth
from mesh.callout import AuthCallout
from mesh.changelog import LogSettings
from mesh.connect import NatsTarget, connect, disconnect
from mesh.discovery import list_services
from mesh.natsd import EmbeddedNats, find_binary
from sdk import Mesh
from tests.support.live import LiveClient
from tests.support.servers import gateway, project_config
from worker import DbWorker
from worker.service import SERVICE_NAME

ALLOW = {"rule": "allow"}


@dataclass
class Bus:
    url: str
    auth: BusAuth


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    """The embedded server as `space-cloud run` starts it: generated config + the auth callout."""
    auth = BusAuth.generate()
    server = EmbeddedNats(work_dir=tmp_path / "nats", auth=auth)
    url = server.start()
    callout = AuthCallout(auth.auth_target(url), issuer=auth.issuer, service_password=auth.service_password)
    try:
        await callout.start()
        yield Bus(url, auth)
    finally:
        await callout.stop()
        server.stop()


@dataclass
class Watched:
    """A raw nats-py connection that records the errors the server sends it."""

    nc: Client
    errors: list[str] = field(default_factory=list)

    async def violation(self, subject: str, timeout: float = 3.0) -> bool:
        """Did the server refuse something on `subject` (a permissions violation)?"""
        await self.nc.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("permissions violation" in e and f'"{subject.lower()}"' in e for e in self.errors):
                return True
            await asyncio.sleep(0.02)
        return False


async def open_as(target: NatsTarget) -> Watched:
    errors: list[str] = []

    async def on_error(err: Exception) -> None:
        errors.append(str(err).lower())

    nc = await nats.connect(servers=target.servers, error_cb=on_error, allow_reconnect=False, connect_timeout=3,
                            **target.options())
    return Watched(nc, errors)


@contextlib.asynccontextmanager
async def watched(target: NatsTarget) -> AsyncIterator[Watched]:
    conn = await open_as(target)
    try:
        yield conn
    finally:
        await conn.nc.close()


async def received(nc: Client, subject: str, send: Any, *, queue: str = "", window: float = 0.5) -> list[str]:
    """Subscribe on `nc`, run `send()`, and return the subjects that arrived within `window`."""
    got: list[str] = []

    async def on_msg(msg: Any) -> None:
        got.append(msg.subject)

    sub = await nc.subscribe(subject, queue=queue, cb=on_msg)
    await nc.flush()
    await send()
    await asyncio.sleep(window)
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    return got


async def nothing() -> None:
    pass


# -- who may connect -------------------------------------------------------------------------------


@pytest.mark.parametrize("creds", [
    pytest.param({}, id="no-credentials"),
    pytest.param({"user": "todo", "password": "guessed"}, id="wrong-service-password"),
    pytest.param({"token": "guessed"}, id="token"),
    pytest.param({"user": "gateway", "password": "x"}, id="gateway-by-name"),
])
async def test_a_connection_without_the_right_credentials_is_refused(bus: Bus, creds: dict[str, str]) -> None:
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(bus.url, allow_reconnect=False, connect_timeout=3, **creds)


async def test_the_gateways_public_key_is_not_a_login(bus: Bus) -> None:
    """The config holds only public keys: naming one (with the service password) gets nothing of that role."""
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await nats.connect(bus.url, user=bus.auth.gateway.public, password="x", allow_reconnect=False,
                           connect_timeout=3)
    async with watched(NatsTarget(bus.url, user=bus.auth.gateway.public, password=bus.auth.service_password)) as c:
        await received(c.nc, "sc.*.changes.>", nothing, window=0)
        assert await c.violation("sc.*.changes.>")  # a service that happens to have that name, no more


def test_the_config_on_disk_holds_no_secret(bus: Bus, tmp_path: Path) -> None:
    conf = (tmp_path / "nats" / "nats.conf").read_text()
    assert bus.auth.gateway.public in conf and bus.auth.issuer.public in conf
    for secret in (bus.auth.gateway.seed, bus.auth.worker.seed, bus.auth.auth.seed, bus.auth.issuer.seed,
                   bus.auth.service_password):
        assert secret not in conf
    assert (tmp_path / "nats" / "nats.conf").stat().st_mode & 0o077 == 0


# -- what a service cannot do ----------------------------------------------------------------------


async def test_a_service_cannot_read_db_requests(bus: Bus) -> None:
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy, \
            watched(bus.auth.gateway_target(bus.url)) as gw:
        for pattern in ("sc.*.db.>", "sc.p.db.db.read", ">"):
            got = await received(spy.nc, pattern, lambda: gw.nc.publish("sc.p.db.db.read", b"{}"))
            assert got == [] and await spy.violation(pattern), pattern
        # not even as a member of the workers' queue group
        got = await received(spy.nc, "sc.p.db.db.read", lambda: gw.nc.publish("sc.p.db.db.read", b"{}"),
                             queue="sc.db")
        assert got == [] and await spy.violation("sc.p.db.db.read")


async def test_a_service_cannot_send_db_requests(bus: Bus) -> None:
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy, \
            watched(bus.auth.worker_target(bus.url)) as worker:
        got = await received(worker.nc, "sc.*.db.>", lambda: spy.nc.publish("sc.p.db.db.delete", b"{}"),
                             queue="sc.db")
        assert got == [] and await spy.violation("sc.p.db.db.delete")
        with pytest.raises(Exception):  # noqa: B017 (a request gets no answer: nothing reached a worker)
            await spy.nc.request("sc.p.db.db.read", b"{}", timeout=1)


async def test_a_service_cannot_listen_to_another_service(bus: Bus) -> None:
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy, \
            watched(bus.auth.gateway_target(bus.url)) as gw:
        for pattern, queue in (("sc.p.fn.billing.charge", ""), ("sc.p.fn.billing.charge", "billing"),
                               ("sc.p.fn.billing.*", "billing"), ("sc.*.fn.>", ""), ("sc.p.fn.*.*", "")):
            got = await received(spy.nc, pattern, lambda: gw.nc.publish("sc.p.fn.billing.charge", b""), queue=queue)
            assert got == [] and await spy.violation(pattern), pattern
        # its own functions, yes
        got = await received(spy.nc, "sc.p.fn.spy.f", lambda: gw.nc.publish("sc.p.fn.spy.f", b""), queue="spy")
        assert got == ["sc.p.fn.spy.f"]


async def test_a_service_cannot_follow_change_events(bus: Bus) -> None:
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy, \
            watched(bus.auth.worker_target(bus.url)) as worker:
        for pattern in ("sc.*.changes.>", "sc.p.changes.db.users"):
            got = await received(spy.nc, pattern, lambda: worker.nc.publish("sc.p.changes.db.users", b"{}"))
            assert got == [] and await spy.violation(pattern), pattern
        # nor write them (a forged change event would reach every live query)
        await spy.nc.publish("sc.p.changes.db.users", b"{}")
        assert await spy.violation("sc.p.changes.db.users")


async def test_a_service_cannot_read_the_gateways_replies(bus: Bus) -> None:
    gw_inbox = str(roles.gateway().inbox)
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy, \
            watched(bus.auth.gateway_target(bus.url)) as gw, \
            watched(bus.auth.worker_target(bus.url)) as worker:

        async def answer(msg: Any) -> None:
            await msg.respond(b"secret rows")

        await worker.nc.subscribe("sc.p.db.db.read", queue="sc.db", cb=answer)
        await worker.nc.flush()
        assert gw.nc.new_inbox().startswith(gw_inbox + ".")

        async def ask() -> None:
            assert (await gw.nc.request("sc.p.db.db.read", b"{}", timeout=2)).data == b"secret rows"

        for pattern in (f"{gw_inbox}.>", "_sc.>", "_INBOX.>", "_sc.worker.>", "_sc.svc.other.>"):
            assert await received(spy.nc, pattern, ask) == [], pattern
            assert await spy.violation(pattern), pattern


async def test_a_service_cannot_use_jetstream_or_impersonate_the_gateway(bus: Bus) -> None:
    async with watched(bus.auth.service_target(bus.url, "spy")) as spy:
        await spy.nc.publish("$JS.API.STREAM.INFO.SC_CHANGES", b"")
        assert await spy.violation("$JS.API.STREAM.INFO.SC_CHANGES")
        await spy.nc.publish("$SRV.INFO", b"")  # discovery is the gateway's
        assert await spy.violation("$SRV.INFO")
        await spy.nc.publish("$SYS.REQ.USER.AUTH", b"")
        assert await spy.violation("$SYS.REQ.USER.AUTH")
    # a service named `gateway` is just a service
    async with watched(bus.auth.service_target(bus.url, "gateway")) as named:
        await received(named.nc, "sc.*.changes.>", nothing, window=0)
        assert await named.violation("sc.*.changes.>")
        await named.nc.publish("sc.p.db.db.read", b"")
        assert await named.violation("sc.p.db.db.read")


async def test_the_worker_only_serves_db_requests(bus: Bus) -> None:
    assert roles.DB_WORKER_SERVICE == SERVICE_NAME
    async with watched(bus.auth.worker_target(bus.url)) as worker:
        await worker.nc.publish("sc.p.fn.billing.charge", b"")
        assert await worker.violation("sc.p.fn.billing.charge")
        await received(worker.nc, "sc.*.fn.>", nothing, window=0)
        assert await worker.violation("sc.*.fn.>")
        await worker.nc.publish("sc.p.db.db.read", b"")
        assert await worker.violation("sc.p.db.db.read")


# -- and what must still work ----------------------------------------------------------------------


async def test_the_whole_mesh_works_under_the_permissions(bus: Bus, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    project = "p" + uuid.uuid4().hex[:10]
    functions = {"services": {"echo": {"functions": {"default": {"rule": ALLOW}}, "register": ALLOW},
                              "pysvc": {"functions": {"default": {"rule": ALLOW}}}}}
    collections = {"notes": {"isRealtimeEnabled": True,
                             "rules": {k: ALLOW for k in ("create", "read", "update", "delete")}}}
    crud = {"sqlite": {"type": "sqlite", "conn": str(tmp_path / "bus.db"), "collections": collections}}
    cfg = parse(project_config(project, functions=functions, crud=crud), env={}, base=tmp_path)
    # services on this machine find the bus through the dev-state file, as with `space-cloud run`
    home = tmp_path / "home"
    devstate.write({"nats_url": bus.url, "project": project, "service_password": bus.auth.service_password},
                   home=str(home))
    monkeypatch.setenv("SPACE_CLOUD_HOME", str(home))
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)

    worker = DbWorker(bus.auth.worker_target(bus.url), databases=cfg.databases())
    await worker.start()
    py = Mesh("pysvc")
    caller = Mesh("caller")

    @py.function
    async def hello(params: Any, auth: Any) -> dict[str, Any]:
        return {"hello": params}

    @py.function
    async def via_socket(params: Any, auth: Any) -> Any:
        return await py.call("echo", "say", params)

    try:
        async with gateway(cfg, bus.auth.gateway_target(bus.url)) as gw, py, caller, \
                httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
            base = f"/v1/api/{project}"
            live = await LiveClient.connect(gw.ws_url, project)
            await live.subscribe("q1", "notes", "sqlite")
            since = time.time() * 1000
            # CRUD: gateway -> worker
            r = await http.post(f"{base}/crud/sqlite/notes/create", json={"op": "one", "doc": {"id": "n1", "t": "a"}})
            assert r.status_code == 200, r.text
            r = await http.post(f"{base}/crud/sqlite/notes/read", json={"op": "one", "find": {"id": "n1"}})
            assert r.json() == {"result": {"id": "n1", "t": "a"}}
            # change events: worker -> gateway -> live query
            await live.until(lambda: "n1" in live.snapshot("q1"))
            await live.close()
            # calls: HTTP -> service, service -> service
            r = await http.post(f"{base}/functions/pysvc/hello", json={"params": 1, "timeout": 5000})
            assert r.status_code == 200 and r.json() == {"result": {"hello": 1}}, r.text
            assert await caller.call("pysvc", "hello", 2) == {"hello": 2}
            # discovery ($SRV), as the gateway does it
            assert "pysvc" in [s["name"] for s in await list_services(gw.gw.core.nc, project)]
            # a WebSocket-registered service (it runs in the gateway's connection), called by a service
            async with websockets.connect(f"{gw.ws_url}{base}/socket/json") as ws:
                await ws.send(orjson.dumps({"id": "r1", "type": "service-register",
                                            "data": {"service": "echo", "token": ""}}).decode())
                assert orjson.loads(await ws.recv())["data"]["ack"] is True
                serving = asyncio.create_task(_serve_socket(ws))
                try:
                    assert await caller.call("pysvc", "via_socket", {"x": 1}) == {"echoed": {"x": 1}}
                finally:
                    serving.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await serving
        # the JetStream replay (resume), as the gateway reads it
        nc = await connect(bus.auth.gateway_target(bus.url), name="replay")
        try:
            reader = ChangeLogReader(nc, LogSettings())
            state = await reader.state()
            assert state.covers_since(since)
            pages = [page async for page in reader.replay(f"sc.{project}.changes.sqlite.notes", float(since),
                                                            state.last_seq)]
            assert [e.id for page in pages for _, e in page] == ["n1"]
        finally:
            await disconnect(nc)
    finally:
        await worker.stop()


async def _serve_socket(ws: Any) -> None:
    async for raw in ws:
        frame = orjson.loads(raw)
        if frame["type"] == "service-request":
            data = frame["data"]
            await ws.send(orjson.dumps({"id": uuid.uuid4().hex, "type": "service-request",
                                        "data": {"id": data["id"], "params": {"echoed": data["params"]}}}).decode())


# -- an external NATS: deploy/nats-auth.conf ------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nats-auth.conf"


def test_the_example_config_grants_what_each_role_needs() -> None:
    """deploy/nats-auth.conf says, for each role, what `mesh.roles` says (the embedded server's table)."""
    text = EXAMPLE.read_text()
    blocks = {name: text.split(f"user: {name}\n", 1)[1].split("\n    }", 1)[0]
              for name in ("gateway", "worker", "todo")}
    for name, perms in (("gateway", roles.gateway()), ("worker", roles.worker()), ("todo", roles.service("todo"))):
        publish = blocks[name].split("publish:", 1)[1].split("\n", 1)[0]
        subscribe = blocks[name].split("subscribe:", 1)[1].split("allow_responses", 1)[0]
        assert sorted(_quoted(publish)) == sorted(perms.publish), name
        assert sorted(_quoted(subscribe)) == sorted(perms.subscribe), name
        assert f'expires: "{roles.RESPONSE_TTL_S}s"' in blocks[name]


def _spawn(cmd: list[str], *, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _quoted(text: str) -> list[str]:
    return text.split('"')[1::2]


async def test_an_external_nats_with_the_example_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The production shape on deploy/nats-auth.conf: gateway, worker and a service, each as its own user."""
    from tests.support.servers import free_port

    passwords = {f"SC_NATS_{user}_PASSWORD": uuid.uuid4().hex for user in ("GATEWAY", "WORKER", "TODO")}
    nats_port = free_port()
    url = f"nats://127.0.0.1:{nats_port}"
    root = EXAMPLE.parents[1]
    server = _spawn([find_binary(), "-c", str(EXAMPLE), "-a", "127.0.0.1", "-p", str(nats_port), "-sd",
                     str(tmp_path / "js")], env={**os.environ, **passwords})
    (tmp_path / "config.yaml").write_text(
        "projects:\n"
        "  - id: ext\n"
        "    secret: a-long-enough-secret-for-this-test-0123456789\n"
        "    modules:\n"
        "      crud:\n"
        "        sqlite:\n"
        "          conn: ext.db\n"
        "          collections:\n"
        "            default: {rules: {create: {rule: allow}, read: {rule: allow}}}\n"
        "      functions:\n"
        "        services:\n"
        "          todo: {functions: {default: {rule: {rule: allow}}}}\n"
    )
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SPACE_CLOUD_NATS")}
    base_env.update(PYTHONPATH=str(root), HOME=str(tmp_path), SPACE_CLOUD_HOME=str(tmp_path / ".sc"))
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", nats_port), timeout=0.2).close()
                break
            await asyncio.sleep(0.05)
        for args, user in ((["run", "--port", str(port), "--no-worker"], "gateway"), (["worker"], "worker")):
            env = {**base_env, "SPACE_CLOUD_NATS_USER": user,
                   "SPACE_CLOUD_NATS_PASSWORD": passwords[f"SC_NATS_{user.upper()}_PASSWORD"]}
            procs.append(_spawn([sys.executable, "-m", "gateway.cli", *args, "--nats", url, "--config", "config.yaml"],
                                env=env, cwd=tmp_path))
        monkeypatch.setenv("SPACE_CLOUD_NATS", url)
        monkeypatch.setenv("SPACE_CLOUD_NATS_USER", "todo")
        monkeypatch.setenv("SPACE_CLOUD_NATS_PASSWORD", passwords["SC_NATS_TODO_PASSWORD"])
        svc = Mesh("todo", project="ext")

        @svc.function
        async def add(params: Any, auth: Any) -> int:
            return int(params["a"]) + int(params["b"])

        async with svc, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            body = {"op": "one", "doc": {"id": "e1"}}
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    r = await http.post("/v1/api/ext/crud/sqlite/items/create", json=body)
                    if r.status_code == 200:
                        break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            r = await http.post("/v1/api/ext/crud/sqlite/items/read", json={"op": "count"})
            assert r.json() == {"result": 1}
            r = await http.post("/v1/api/ext/functions/todo/add", json={"params": {"a": 2, "b": 3}, "timeout": 5000})
            assert r.status_code == 200 and r.json() == {"result": 5}, r.text
            async with watched(NatsTarget(url, user="todo", password=passwords["SC_NATS_TODO_PASSWORD"],
                                          inbox_prefix=roles.service("todo").inbox)) as todo:
                await received(todo.nc, "sc.*.db.>", nothing, window=0)
                assert await todo.violation("sc.*.db.>")
    finally:
        for proc in (*procs, server):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]


def test_credentials_come_from_flags_then_the_environment() -> None:
    from gateway.cli import _nats_auth, _parser

    args = _parser().parse_args(["worker", "--nats", "tls://nats:4222", "--nats-creds", "/etc/sc/worker.creds",
                                 "--nats-tls-ca", "/etc/sc/ca.pem"])
    target = _nats_auth(args, {"SPACE_CLOUD_NATS_CREDS": "/elsewhere.creds", "SPACE_CLOUD_NATS_TOKEN": "t0k"})
    assert target is not None
    assert (target.creds_file, target.tls_ca, target.token) == ("/etc/sc/worker.creds", "/etc/sc/ca.pem", "t0k")
    assert "t0k" not in repr(target)
    plain = _parser().parse_args(["worker", "--nats", "nats://nats:4222"])
    assert _nats_auth(plain, {}) is None
