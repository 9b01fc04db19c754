"""Load for live queries at scale, in its own process (part 7, bench/realtime_scale.py).

    python bench/procs/realtime_scale_load.py subscribe --ws URL --col C --alias A --first F --count N
        [--shared] [--idle]
    python bench/procs/realtime_scale_load.py inject --nats URL --subject S --rate R --duration D
        --users U [--nobody]
    python bench/procs/realtime_scale_load.py insert --create URL --rate R --duration D --users U

subscribe: opens N WebSockets; unless --idle, socket i subscribes to `{userId: u<F+i>}` (or, with
           --shared, every socket to `{room: r1}`), skipping the initial snapshot. The sockets are a small
           asyncio protocol of their own (a text frame costs it a few µs, a tenth of what the `websockets`
           client takes), so that 1,000 frames per event do not delay their own arrival much. Prints {"ready": ...}
           and then answers lines on stdin: `report` prints the deliveries and latencies (arrival minus the
           `t` the document carries) since the last report; `done` closes the sockets and exits.
inject:    publishes change events straight into the change log (JetStream captures the subject), as
           the db worker's relay does after a commit: R a second for D seconds, each a new document of a
           random user among U (`u0`..), or of nobody (--nobody), or of room r1 (--users 0). Prints
           {"sent": n, "seconds": s}.
insert:    the same documents created through the CRUD API (gateway, NATS, db worker, database, change
           log), R a second with up to 64 requests in flight; prints {"sent": n, "seconds": s, "errors": e}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


class Socket(asyncio.Protocol):
    """A minimal WebSocket client: the handshake, unmasked text frames in, masked text frames out."""

    def __init__(self, url: str, on_text: Any) -> None:
        self.url = urlsplit(url)
        self.on_text = on_text
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  (uvloop's transports are not asyncio.Transport)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET {self.url.path} HTTP/1.1\r\nHost: {self.url.netloc}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                         ).encode())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.opened.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(bytes(buf[:200]).decode(errors="replace")))
                return
            del buf[:end + 4]
            self.opened.set_result(None)
        while len(buf) >= 2:
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                return
            opcode, payload = buf[0] & 0x0F, bytes(buf[off:off + n])
            del buf[:off + n]
            if opcode == 1:
                if self.first is not None and not self.first.done():
                    self.first.set_result(payload)
                else:
                    self.on_text(payload)
            elif opcode == 9:
                self._send(0xA, payload)

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        n = len(payload)
        head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(head + mask + body)

    def send_text(self, text: str) -> None:
        self._send(0x1, text.encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Subscribers:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.sockets: list[Socket] = []
        self.latencies: list[float] = []

    async def open(self) -> None:
        sem = asyncio.Semaphore(64)
        a = self.a
        url = urlsplit(a.ws)
        loop = asyncio.get_running_loop()

        async def one(i: int) -> None:
            async with sem:
                _, sock = await loop.create_connection(lambda: Socket(a.ws, self.received), url.hostname,
                                                       url.port)
                await asyncio.wait_for(sock.opened, 60)
                self.sockets.append(sock)
                if a.idle:
                    return
                where = {"room": "r1"} if a.shared else {"userId": f"u{a.first + i}"}
                sock.first = loop.create_future()
                sock.send_text(json.dumps({"id": "s", "type": "realtime-subscribe", "data": {
                    "id": "q", "group": a.col, "dbType": a.alias, "where": where,
                    "options": {"skipInitial": True}}}))
                ack = orjson.loads(await asyncio.wait_for(sock.first, 60))
                if not ack["data"].get("ack"):
                    raise RuntimeError(f"subscribe refused: {ack['data'].get('error')}")

        await asyncio.gather(*(one(i) for i in range(a.count)))

    def received(self, raw: bytes) -> None:
        now = time.time()
        data = orjson.loads(raw).get("data") or {}
        sent = (data.get("payload") or {}).get("t")
        if sent is not None:
            self.latencies.append(now - sent)

    def report(self) -> dict[str, Any]:
        got, self.latencies = self.latencies, []
        return {"deliveries": len(got), "p50_ms": percentile(got, 50) * 1000, "p90_ms": percentile(got, 90) * 1000,
                "p99_ms": percentile(got, 99) * 1000, "max_ms": max(got, default=0.0) * 1000,
                "latencies_ms": [round(x * 1000, 3) for x in got] if len(got) <= 200_000 else []}

    async def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        await asyncio.sleep(0.1)


async def subscribe(a: argparse.Namespace) -> None:
    subs = Subscribers(a)
    await subs.open()
    print(json.dumps({"ready": True, "sockets": len(subs.sockets)}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "report":
            print(json.dumps(subs.report()), flush=True)
        elif line in ("done", ""):
            break
    await subs.close()


async def inject(a: argparse.Namespace) -> None:
    import nats

    from mesh.messages import ChangeEvent

    nc = await nats.connect(a.nats)
    rnd = random.Random()
    run = f"i{time.time_ns() % 10**12:x}"
    per_tick = a.rate / 100  # 10 ms ticks
    total = int(a.rate * a.duration)
    sent, owed = 0, 0.0
    start = time.monotonic()
    tick = 0
    while sent < total:
        owed += per_tick
        n = min(int(owed), total - sent)
        owed -= n
        for _ in range(n):
            doc_id = f"{run}-{sent}"
            if a.users == 0:
                key = {"room": "r1"}
            elif a.nobody:
                key = {"userId": f"nobody-{sent}"}
            else:
                key = {"userId": f"u{rnd.randrange(a.users)}"}
            now = time.time()
            event = ChangeEvent(type="insert", id=doc_id, doc={"id": doc_id, **key, "t": now},
                                version=time.time_ns() // 1000, time=int(now * 1000))
            await nc.publish(a.subject, event.encode(), headers={"Nats-Msg-Id": doc_id})
            sent += 1
        tick += 1
        delay = start + tick * 0.01 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    await nc.flush()
    seconds = time.monotonic() - start
    await nc.close()
    print(json.dumps({"sent": sent, "seconds": seconds}), flush=True)


async def insert(a: argparse.Namespace) -> None:
    import httpx

    rnd = random.Random()
    run = f"h{time.time_ns() % 10**12:x}"
    total = int(a.rate * a.duration)
    sem = asyncio.Semaphore(64)
    errors = 0

    async def one(client: httpx.AsyncClient, n: int) -> None:
        nonlocal errors
        async with sem:
            body = orjson.dumps({"op": "one", "doc": {"id": f"{run}-{n}", "userId": f"u{rnd.randrange(a.users)}",
                                                      "t": time.time()}})
            try:
                r = await client.post(a.create, content=body, headers={"content-type": "application/json"})
                errors += r.status_code != 200
            except httpx.HTTPError:
                errors += 1

    start = time.monotonic()
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        tasks = []
        for n in range(total):
            delay = start + n / a.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)
    print(json.dumps({"sent": total - errors, "seconds": time.monotonic() - start, "errors": errors}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="role", required=True)
    s = sub.add_parser("subscribe")
    s.add_argument("--ws", required=True)
    s.add_argument("--col", required=True)
    s.add_argument("--alias", required=True)
    s.add_argument("--first", type=int, default=0)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--shared", action="store_true")
    s.add_argument("--idle", action="store_true")
    i = sub.add_parser("inject")
    i.add_argument("--nats", required=True)
    i.add_argument("--subject", required=True)
    i.add_argument("--rate", type=float, required=True)
    i.add_argument("--duration", type=float, required=True)
    i.add_argument("--users", type=int, required=True)
    i.add_argument("--nobody", action="store_true")
    h = sub.add_parser("insert")
    h.add_argument("--create", required=True)
    h.add_argument("--rate", type=float, required=True)
    h.add_argument("--duration", type=float, required=True)
    h.add_argument("--users", type=int, required=True)
    a = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    asyncio.run({"subscribe": subscribe, "inject": inject, "insert": insert}[a.role](a))


if __name__ == "__main__":
    main()
