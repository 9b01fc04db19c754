"""Development restarts are seamless: `space-cloud run` killed with SIGKILL and started again.

The embedded NATS comes back on the port it had (or, when that is taken, on another one that
services follow through the dev-state file), a service started before the crash answers again
without a restart, and the crash leaves nothing that misleads the next start: the dev-state file is
recognised as stale, the workspace (config, log, JetStream store) is reused, no temp directory or
nats-server is left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh import devstate
from sdk import Mesh
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


class DevServer:
    """`space-cloud run` in its own home and temp dir, as a developer starts it."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / ".sc"
        self.tmpdir = tmp / "tmp"
        self.tmpdir.mkdir()
        self.cwd = tmp
        self.port = free_port()
        self.env = {**os.environ, "HOME": str(tmp), "SPACE_CLOUD_HOME": str(self.home), "TMPDIR": str(self.tmpdir),
                    "PYTHONPATH": str(ROOT)}
        self.env.pop("SPACE_CLOUD_NATS", None)
        self.proc: subprocess.Popen[str] | None = None
        self.runs = 0

    def spawn(self) -> subprocess.Popen[str]:
        self.runs += 1
        with (self.cwd / f"run-{self.runs}.log").open("w") as out:
            return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--port", str(self.port)],
                                    cwd=self.cwd, env=self.env, text=True, stdout=out, stderr=subprocess.STDOUT)

    @property
    def output(self) -> str:
        return (self.cwd / f"run-{self.runs}.log").read_text()

    async def start(self) -> dict[str, Any]:
        self.proc = self.spawn()
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise AssertionError(f"space-cloud run exited: {self.output}")
                try:
                    if (await http.get(f"{self.url}/v1/api/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("gateway did not come up")
        info = devstate.read(home=str(self.home))
        assert info is not None and info["pid"] == self.proc.pid
        return info

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> str:
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert proc.returncode == 0, self.output
        return self.output


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path)
    try:
        yield server
    finally:
        if server.proc is not None:
            server.proc.kill()
            server.proc.wait(timeout=10)


@pytest.fixture
async def service(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Mesh]:
    """A service that found the dev server by itself; started once, before any crash."""
    await dev.start()
    monkeypatch.setenv("SPACE_CLOUD_HOME", str(dev.home))
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
    svc = Mesh("todo")

    @svc.function
    async def ping(params: Any, auth: Any) -> dict[str, Any]:
        return {"pong": params}

    async with svc:
        yield svc


def nats_pids(home: Path) -> list[int]:
    """Live nats-servers whose command line names this home (their workspace is in it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"nats-server" in cmdline and str(home).encode() in cmdline and devstate.alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


async def answers(dev: DevServer, params: Any, *, tries: int = 400) -> httpx.Response:
    async with httpx.AsyncClient(base_url=dev.url, timeout=5) as http:
        for _ in range(tries):
            r = await http.post("/v1/api/myproject/functions/todo/ping", json={"params": params, "timeout": 2000})
            if r.status_code == 200:
                return r
            await asyncio.sleep(0.05)
    return r


async def gone(pids: list[int]) -> bool:
    for _ in range(200):
        if not any(devstate.alive(p) for p in pids):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_service_survives_a_crash_and_restart(dev: DevServer, service: Mesh) -> None:
    first = devstate.read(home=str(dev.home))
    assert first is not None
    assert (await answers(dev, 1)).json() == {"result": {"pong": 1}}
    servers = nats_pids(dev.home)
    assert len(servers) == 1

    dev.kill()
    # the crash: the server goes with the run; the dev-state file is recognised as stale
    assert await gone(servers), "the embedded nats-server outlived a SIGKILL of space-cloud run"
    assert devstate.read(home=str(dev.home)) is None
    assert devstate.stale(home=str(dev.home)) is not None

    second = await dev.start()
    assert second["nats_url"] == first["nats_url"], "the embedded NATS should keep its port"
    assert second["service_password"] != first["service_password"]  # credentials are new on every start
    r = await answers(dev, 2)
    assert r.status_code == 200 and r.json() == {"result": {"pong": 2}}, r.text
    assert await service.call("todo", "ping", 3) == {"pong": 3}

    out = dev.stop()
    assert "Traceback" not in out
    assert not (dev.home / "dev-server.json").exists()
    assert await gone(nats_pids(dev.home) + servers)
    assert list(dev.tmpdir.iterdir()) == [], "nothing may be left in the temp directory"
    workspace = dev.home / "nats"
    assert not list(workspace.glob("nats-server_*.ports"))
    assert json.loads((workspace / "server.json").read_text()) == {"port": int(first["nats_url"].rsplit(":", 1)[1])}
    assert not any(p.name.startswith("nats-") for p in dev.home.iterdir()), "one workspace, reused"


async def test_a_service_follows_the_server_to_a_new_port(dev: DevServer, service: Mesh) -> None:
    first = devstate.read(home=str(dev.home))
    assert first is not None
    old_port = int(first["nats_url"].rsplit(":", 1)[1])
    servers = nats_pids(dev.home)
    dev.kill()
    assert await gone(servers)
    # someone else takes the port meanwhile: the next start picks another, and the service follows it
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        second = await dev.start()
        assert second["nats_url"] != first["nats_url"]
        r = await answers(dev, "moved")
        assert r.status_code == 200 and r.json() == {"result": {"pong": "moved"}}, r.text
    dev.stop()


def test_a_reused_pid_is_not_a_live_server(tmp_path: Path) -> None:
    home = str(tmp_path)
    devstate.write({"nats_url": "nats://127.0.0.1:1", "project": "p"}, home=home)
    assert devstate.read(home=home) is not None
    path = devstate.state_path(home)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "started": "1"}))  # same pid, another process start
    assert devstate.read(home=home) is None and devstate.stale(home=home) is not None


def test_a_second_run_takes_its_own_workspace(tmp_path: Path) -> None:
    one = devstate.claim_workspace(str(tmp_path))
    two = devstate.claim_workspace(str(tmp_path))
    try:
        assert one.path.name == "nats" and two.path.name == "nats-1"
    finally:
        one.release()
        two.release()
    again = devstate.claim_workspace(str(tmp_path))  # released (or crashed): free again
    try:
        assert again.path.name == "nats"
    finally:
        again.release()
