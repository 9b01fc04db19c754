"""`space-cloud run` serves gRPC on its own port (`--grpc-port`), or not (`--no-grpc`); a port in use is an
error when asked for and only a warning for the default."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from gateway.app import Gateway
from gateway.config import dev_config
from gateway.grpc.stubs import pb, pb_grpc
from gateway.runner import RunOptions, _start_grpc
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(tmp_path), "SPACE_CLOUD_HOME": str(tmp_path / ".sc"), "PYTHONPATH": str(ROOT)}
    env.pop("SPACE_CLOUD_NATS", None)
    return env


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


async def up(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        for _ in range(300):
            try:
                if (await http.get("/v1/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("gateway did not come up")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    return out


async def test_run_serves_grpc_on_the_port_given(tmp_path: Path, home: dict[str, str]) -> None:
    port, grpc_port = free_port(), free_port()
    proc = run("--port", str(port), "--grpc-port", str(grpc_port), cwd=tmp_path, env=home)
    try:
        await up(port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = pb_grpc.SpaceCloudStub(channel)
            meta = pb.Meta(project="myproject", dbType="sqlite", col="notes")
            r = await stub.Create(pb.CreateRequest(document=b'{"id": "n1", "t": "hi"}', operation="one", meta=meta))
            assert r.status == 200, r.error
            r = await stub.Read(pb.ReadRequest(find=b'{"id": "n1"}', operation="one", meta=meta))
            assert (r.status, r.result) == (200, b'{"id":"n1","t":"hi"}')
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:  # the same data over HTTP
            r2 = await http.post("/v1/api/myproject/crud/sqlite/notes/read", json={"op": "count"})
            assert r2.json() == {"result": 1}
    finally:
        out = stop(proc)
    assert f"gRPC (proto.SpaceCloud) on localhost:{grpc_port}" in out


async def test_no_grpc(tmp_path: Path, home: dict[str, str]) -> None:
    port, grpc_port = free_port(), free_port()
    proc = run("--port", str(port), "--no-grpc", cwd=tmp_path, env=home)
    try:
        await up(port)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", grpc_port), timeout=2):
            pass
    finally:
        out = stop(proc)
    assert "gRPC" not in out


def test_no_grpc_and_a_grpc_port_contradict(tmp_path: Path, home: dict[str, str]) -> None:
    both = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--no-grpc", "--grpc-port", "1"],
                          cwd=tmp_path, env=home, capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_grpc_port_in_use_that_was_asked_for_is_an_error(tmp_path: Path, home: dict[str, str],
                                                         busy_port: int) -> None:
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "run", "--port", str(free_port()),
                        "--grpc-port", str(busy_port)], cwd=tmp_path, env=home, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"gRPC: cannot listen for gRPC on 0.0.0.0:{busy_port}" in r.stderr and "--no-grpc" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


async def test_the_default_port_in_use_only_turns_grpc_off(busy_port: int, caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    gw = Gateway(dev_config(), nats_url="nats://127.0.0.1:1")  # not started: only its features are handed over
    opts = RunOptions(host="127.0.0.1", grpc_port=busy_port, grpc_port_given=False)
    assert await _start_grpc(gw, opts, gw.core.config) is None
    assert any("no gRPC" in r.getMessage() and "--grpc-port" in r.getMessage() for r in caplog.records)
    server = await _start_grpc(gw, RunOptions(host="127.0.0.1", grpc_port=0), gw.core.config)
    assert server is not None and server.port > 0
    await server.stop(0)
    assert await _start_grpc(gw, RunOptions(grpc_port=None), gw.core.config) is None
