"""Realtime load generator, in its own process: N WebSocket subscribers on one live query, and an inserter.

    python bench/procs/realtime_load.py --ws WS_URL --create HTTP_URL --col C --alias A \
        --mode latency|throughput|idle --subscribers N [--rate R] [--duration D]

latency:    inserts R documents a second for D seconds, each carrying its send time; every subscriber
            records (arrival - send) per event. Prints p50/p99 over all deliveries and over the last
            delivery of each event, and the deliveries missed.
throughput: K inserters as fast as the gateway takes them for D seconds; prints events/s inserted and
            deliveries/s received (and whether every subscriber got every event).
idle:       opens N sockets without subscribing, prints {"ready": true}, waits for a line on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

ROOM = "r1"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


class Subscribers:
    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.sockets: list[ClientConnection] = []
        self.latencies: dict[str, list[float]] = {}
        self.deliveries = 0
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self, n: int, subscribe: bool) -> None:
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                ws = await connect(self.a.ws, max_queue=None, compression=None, open_timeout=30)
                self.sockets.append(ws)
                if subscribe:
                    await ws.send(json.dumps({"id": f"r{i}", "type": "realtime-subscribe", "data": {
                        "id": f"q{i}", "group": self.a.col, "dbType": self.a.alias, "where": {"room": ROOM},
                        "options": {"skipInitial": True}}}))
                    while True:
                        frame = orjson.loads(await ws.recv())
                        if frame.get("type") == "realtime-subscribe":
                            if not frame["data"].get("ack"):
                                raise RuntimeError(f"subscribe refused: {frame['data'].get('error')}")
                            break
                    self.tasks.append(asyncio.create_task(self.read(ws)))

        await asyncio.gather(*(one(i) for i in range(n)))

    async def read(self, ws: ClientConnection) -> None:
        latencies = self.latencies
        try:
            async for raw in ws:
                now = time.time()
                frame = orjson.loads(raw)
                if frame.get("type") != "realtime-feed":
                    continue
                data = frame["data"]
                payload = data.get("payload") or {}
                sent = payload.get("t")
                if data.get("type") == "insert" and sent is not None:
                    latencies.setdefault(data["docId"], []).append(now - sent)
                    self.deliveries += 1
        except Exception:  # noqa: S110 (closed at the end)
            pass

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        for t in self.tasks:
            t.cancel()


async def insert(client: httpx.AsyncClient, url: str, doc_id: str) -> None:
    body = orjson.dumps({"op": "one", "doc": {"id": doc_id, "room": ROOM, "t": time.time()}})
    r = await client.post(url, content=body, headers={"content-type": "application/json"})
    if r.status_code != 200:
        raise RuntimeError(f"insert failed: {r.status_code} {r.text[:200]}")


async def main(a: argparse.Namespace) -> dict[str, Any]:
    subs = Subscribers(a)
    if a.mode == "idle":
        await subs.open(a.subscribers, subscribe=False)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await subs.close()
        return {"sockets": len(subs.sockets)}
    await subs.open(a.subscribers, subscribe=True)
    await asyncio.sleep(0.5)
    run = f"{a.mode[0]}{int(time.time() * 1000) % 10**9}"
    sent = 0
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=16)) as client:
        if a.mode == "latency":
            interval = 1.0 / a.rate
            start = time.monotonic()
            for i in range(int(a.rate * a.duration)):
                delay = start + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await insert(client, a.create, f"{run}-{i}")
                sent += 1
            t_end = time.monotonic()
        else:
            counter = itertools.count()
            deadline = time.monotonic() + a.duration
            t_start = time.monotonic()

            async def inserter() -> None:
                nonlocal sent
                while time.monotonic() < deadline:
                    await insert(client, a.create, f"{run}-{next(counter)}")
                    sent += 1

            await asyncio.gather(*(inserter() for _ in range(a.inserters)))
            t_end = time.monotonic()
        # let the last deliveries arrive (bounded)
        expected = sent * a.subscribers
        wait_until = time.monotonic() + 10
        while subs.deliveries < expected and time.monotonic() < wait_until:  # noqa: ASYNC110 (a bounded poll)
            await asyncio.sleep(0.05)
        t_done = time.monotonic()
    await subs.close()
    every = [x for v in subs.latencies.values() for x in v]
    last = [max(v) for v in subs.latencies.values()]
    out: dict[str, Any] = {
        "subscribers": a.subscribers, "events": sent, "deliveries": subs.deliveries,
        "missed": expected - subs.deliveries,
        "p50_ms": percentile(every, 50) * 1000, "p90_ms": percentile(every, 90) * 1000,
        "p99_ms": percentile(every, 99) * 1000,
        "last_p50_ms": percentile(last, 50) * 1000, "last_p99_ms": percentile(last, 99) * 1000,
    }
    if a.mode == "throughput":
        window = t_end - t_start
        out["events_per_s"] = sent / window
        out["deliveries_per_s"] = subs.deliveries / max(t_done - t_start, 1e-9)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ws", required=True)
    p.add_argument("--create", required=True, help="the CRUD create URL of the collection")
    p.add_argument("--col", required=True)
    p.add_argument("--alias", required=True)
    p.add_argument("--mode", choices=["latency", "throughput", "idle"], required=True)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--inserters", type=int, default=8)
    p.add_argument("--duration", type=float, default=5.0)
    args = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(main(args))), flush=True)
