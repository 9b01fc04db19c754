"""`space-cloud run --processes N`: N gateway processes on one port (SO_REUSEPORT), live queries on each,
and all of them gone when the first one stops."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import websockets

from gateway.processes import reuse_port_socket
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry))
    return out


def established(pid: int, port: int) -> int:
    """TCP connections accepted on `port` that process `pid` holds."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def siblings_of(pid: int) -> list[int]:
    return [p for p in children(pid) if "nats-server" not in Path(f"/proc/{p}/cmdline").read_text()]


def running(pids: list[int]) -> list[int]:
    """Those of `pids` still running (not gone, not zombies)."""
    out = []
    for p in pids:
        try:
            if "zombie" not in Path(f"/proc/{p}/status").read_text().lower():
                out.append(p)
        except OSError:
            continue
    return out


def run(port: int, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", "--port", str(port), "--no-grpc",
                             "--processes", "2"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_two_sockets_share_a_port() -> None:
    port = free_port()
    a = reuse_port_socket("127.0.0.1", port)
    b = reuse_port_socket("127.0.0.1", port)
    a.close()
    b.close()


async def test_processes_share_the_port_and_stop_together(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SPACE_CLOUD_HOME": str(tmp_path / ".sc"), "PYTHONPATH": str(ROOT)}
    env.pop("SPACE_CLOUD_NATS", None)
    port = free_port()
    proc = run(port, tmp_path, env)
    sockets: list[websockets.ClientConnection] = []
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            for _ in range(300):
                try:
                    if (await http.get("/v1/api/health")).status_code == 200 and len(children(proc.pid)) >= 1:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # the sibling's listener
            siblings = siblings_of(proc.pid)
            assert siblings, "a second gateway process runs"
            # dev config: every request allowed; one live query per socket, a write reaches all of them
            for n in range(24):
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/api/myproject/socket/json",
                                              compression=None)
                sockets.append(ws)
                await ws.send(orjson.dumps({"id": "s", "type": "realtime-subscribe", "data": {
                    "id": "q", "group": "notes", "dbType": "sqlite", "where": {"k": n % 3}}}).decode())
                ack = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                assert ack["data"]["ack"] is True, ack
            held = [established(p, port) for p in (proc.pid, *siblings)]
            assert sum(held) >= 24 and sum(1 for h in held if h) == 2, f"both processes hold sockets: {held}"
            r = await http.post("/v1/api/myproject/crud/sqlite/notes/create",
                                json={"op": "all", "doc": [{"id": f"n{k}", "k": k} for k in range(3)]})
            assert r.status_code == 200, r.text
            for n, ws in enumerate(sockets):
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                assert frame["type"] == "realtime-feed" and frame["data"]["payload"]["k"] == n % 3
    finally:
        for ws in sockets:
            await ws.close()
        kids = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    deadline = time.monotonic() + 15
    while running(kids) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    assert not running(kids), "the siblings stopped with it"
