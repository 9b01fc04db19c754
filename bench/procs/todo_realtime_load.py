"""Realtime load for part 5, in its own process: todo subscribers of one system, or the inserter.

    python bench/procs/todo_realtime_load.py --system sc|pb --base http://127.0.0.1:PORT \
        --mode subscribe --subscribers N [--user live]
    python bench/procs/todo_realtime_load.py --system sc|pb --base ... --mode insert --rate R --duration D

Both systems are followed the way their own clients do it, for the todos of one user:
- sc (space-cloud): a WebSocket per subscriber on /v1/api/<project>/socket/json with a live query
  `realtime-subscribe` on `todos` where `{userId: <user>}` (skipInitial);
- pb (PocketBase): a server-sent-events stream per subscriber on /api/realtime; after its PB_CONNECT
  event, POST /api/realtime subscribes the client id to `todos/*` with the filter `userId='<user>'`.

subscribe: opens N subscribers, prints {"ready": true}, then waits for a line `expect K` on stdin: the
           number of inserts that were made. It waits (at most 10 s) until every subscriber has K
           deliveries and prints one JSON line (or writes it to --out): every delivery's latency in ms
           (arrival - send time), per event the latency of its last delivery, deliveries and missed.
insert:    creates R todos a second for D seconds through the system's REST API, each carrying its
           send time in `text` ("rt <seq> <unix time>"); prints {"sent": K}.
Send and arrival times are both `time.time()` on this machine, so the clocks agree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

COLLECTION = "todos"


class Deliveries:
    """Latencies per event (keyed by the todo's `text`) and per subscriber counts."""

    def __init__(self, n: int) -> None:
        self.per_event: dict[str, list[float]] = {}
        self.counts = [0] * n

    def record(self, i: int, text: object, now: float) -> None:
        if not isinstance(text, str) or not text.startswith("rt "):
            return
        sent = float(text.rsplit(" ", 1)[1])
        self.per_event.setdefault(text, []).append((now - sent) * 1000)
        self.counts[i] += 1


async def sc_subscriber(a: argparse.Namespace, i: int, got: Deliveries, ready: asyncio.Event) -> None:
    ws_url = a.base.replace("http://", "ws://") + f"/v1/api/{a.project}/socket/json"
    async with connect(ws_url, max_queue=None, compression=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"id": f"r{i}", "type": "realtime-subscribe", "data": {
            "id": f"q{i}", "group": COLLECTION, "dbType": a.alias, "where": {"userId": a.user},
            "options": {"skipInitial": True}}}))
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("type") == "realtime-subscribe":
                if not frame["data"].get("ack"):
                    raise RuntimeError(f"subscribe refused: {frame['data'].get('error')}")
                break
        ready.set()
        async for raw in ws:
            now = time.time()
            msg = orjson.loads(raw)
            if msg.get("type") != "realtime-feed":
                continue
            data = msg["data"]
            if data.get("type") == "insert":
                got.record(i, (data.get("payload") or {}).get("text"), now)


async def _chunks(reader: asyncio.StreamReader) -> Any:
    """The body of a chunked HTTP response, chunk by chunk."""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)
        yield chunk[:-2]


async def pb_subscriber(a: argparse.Namespace, i: int, got: Deliveries, ready: asyncio.Event,
                        client: httpx.AsyncClient) -> None:
    url = urllib.parse.urlsplit(a.base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET /api/realtime HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-store\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or b"chunked" not in head.lower():
            raise RuntimeError(f"unexpected realtime response: {head[:200]!r}")
        topic = f"{COLLECTION}/*?options=" + urllib.parse.quote(
            json.dumps({"query": {"filter": f"userId='{a.user}'"}}))
        buf = b""
        subscribed = False
        async for chunk in _chunks(reader):
            now = time.time()
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                name, data = b"", b""
                for line in event.split(b"\n"):
                    if line.startswith(b"event:"):
                        name = line[6:].strip()
                    elif line.startswith(b"data:"):
                        data += line[5:]
                if name == b"PB_CONNECT" and not subscribed:
                    client_id = orjson.loads(data)["clientId"]
                    r = await client.post(f"{a.base}/api/realtime",
                                          json={"clientId": client_id, "subscriptions": [topic]})
                    if r.status_code != 204:
                        raise RuntimeError(f"subscription refused: {r.status_code} {r.text[:200]}")
                    subscribed = True
                    ready.set()
                elif subscribed and data:
                    msg = orjson.loads(data)
                    if msg.get("action") == "create":
                        got.record(i, (msg.get("record") or {}).get("text"), now)
    finally:
        writer.close()


async def subscribe(a: argparse.Namespace) -> dict[str, Any]:
    n = a.subscribers
    got = Deliveries(n)
    readies = [asyncio.Event() for _ in range(n)]
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        sem = asyncio.Semaphore(50)
        tasks: list[asyncio.Task[None]] = []

        async def opened(i: int) -> None:
            async with sem:
                task = asyncio.create_task(sc_subscriber(a, i, got, readies[i]) if a.system == "sc"
                                           else pb_subscriber(a, i, got, readies[i], client))
                tasks.append(task)
                waiter = asyncio.create_task(readies[i].wait())
                done, _ = await asyncio.wait({waiter, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    why = task.exception() if task.done() else "timed out"
                    raise RuntimeError(f"subscriber {i} did not subscribe: {why!r}")

        await asyncio.gather(*(opened(i) for i in range(n)))
        print(json.dumps({"ready": True, "subscribers": n}), flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        expect = int(line.split()[1]) if line.startswith("expect") else 0
        deadline = time.monotonic() + 10
        while min(got.counts) < expect and time.monotonic() < deadline:  # noqa: ASYNC110 (a bounded poll)
            await asyncio.sleep(0.05)
        ended = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    deliveries = sum(got.counts)
    return {
        "subscribers": n, "expected": expect * n, "deliveries": deliveries, "failed_subscribers": len(ended),
        "first_failure": repr(ended[0])[:300] if ended else None,
        "missed": max(0, expect * n - deliveries),
        "latencies_ms": [round(x, 3) for v in got.per_event.values() for x in v],
        "last_ms": {k: round(max(v), 3) for k, v in got.per_event.items()},
    }


async def insert(a: argparse.Namespace) -> dict[str, Any]:
    if a.system == "sc":
        url = f"{a.base}/v1/api/{a.project}/crud/{a.alias}/{COLLECTION}/create"
    else:
        url = f"{a.base}/api/collections/{COLLECTION}/records"
    sent = errors = 0
    interval = 1.0 / a.rate
    async with httpx.AsyncClient(timeout=10) as client:
        start = time.monotonic()
        for seq in range(int(a.rate * a.duration)):
            delay = start + seq * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            doc = {"userId": a.user, "text": f"rt {seq} {time.time():.6f}", "done": False}
            body = {"op": "one", "doc": doc} if a.system == "sc" else doc
            r = await client.post(url, content=orjson.dumps(body), headers={"content-type": "application/json"})
            if r.status_code == 200:
                sent += 1
            else:
                errors += 1
                if errors == 1:
                    print(f"insert failed: {r.status_code} {r.text[:200]}", file=sys.stderr)
    return {"sent": sent, "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--system", choices=["sc", "pb"], required=True)
    p.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    p.add_argument("--mode", choices=["subscribe", "insert"], required=True)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--user", default="live")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--project", default="myproject")
    p.add_argument("--alias", default="sqlite")
    p.add_argument("--out", help="write the result to this file (and print where)")
    a = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    out = asyncio.run(subscribe(a) if a.mode == "subscribe" else insert(a))
    if a.out:  # the latencies can be large: a file, not a pipe that the event loop may have left non-blocking
        with open(a.out, "w") as f:
            json.dump(out, f)
        out = {"written": a.out}
    os.set_blocking(sys.stdout.fileno(), True)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
