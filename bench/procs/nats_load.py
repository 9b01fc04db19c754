"""A closed-loop load generator over NATS, in its own process: N concurrent callers for D seconds.

    python bench/procs/nats_load.py --nats URL --mode raw|mesh --concurrency 16 --duration 10

`raw`: nats-py `nc.request()` on `bench.raw.echo` (answered by raw_responder.py).
`mesh`: `sdk.Mesh.call("bench", "echo", ...)` (answered by echo_service.py).
Prints one JSON line: rps, p50/p90/p99 in ms, requests, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

Call = Callable[[], Awaitable[Any]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    idx = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))
    return values[idx]


async def measure(call: Call, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    now = time.perf_counter
    start = now()
    t_measure = start + warmup
    t_end = t_measure + duration

    async def worker() -> None:
        nonlocal errors
        while True:
            t0 = now()
            if t0 >= t_end:
                return
            try:
                await call()
            except Exception:
                errors += 1
                continue
            t1 = now()
            if t0 >= t_measure:
                latencies.append(t1 - t0)

    gc.collect()
    gc.freeze()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {
        "rps": len(latencies) / duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "requests": len(latencies),
        "errors": errors,
    }


async def ready(call: Call, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await call()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def main(a: argparse.Namespace) -> dict[str, Any]:
    payload = b'{"msg":"hi"}'
    params = {"msg": "hi"}
    if a.mode == "raw":
        nc = await nats.connect(a.nats, name="bench-load-raw", pending_size=8 * 1024 * 1024)

        async def call() -> Any:
            return await nc.request(a.subject, payload, timeout=5)

        close: Callable[[], Awaitable[None]] = nc.close
    else:
        from sdk import Mesh

        mesh = Mesh("benchcaller", project=a.project, nats_url=a.nats)
        await mesh.start()

        async def call() -> Any:
            return await mesh.call("bench", "echo", params, timeout=5)

        close = mesh.stop
    try:
        await ready(call)
        return await measure(call, a.concurrency, a.duration, a.warmup)
    finally:
        await close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--nats", required=True)
    p.add_argument("--mode", choices=["raw", "mesh"], required=True)
    p.add_argument("--subject", default="bench.raw.echo")
    p.add_argument("--project", default="bench")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    print(json.dumps(asyncio.run(main(args))), flush=True)
