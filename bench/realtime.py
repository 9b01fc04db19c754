"""Part 4: realtime fan-out on one gateway (PostgreSQL, one live query shared by every subscriber).

- insert → delivery latency (p50/p99 over every subscriber's delivery) at 100 and 1,000 WebSocket
  subscribers, with documents inserted at a steady rate through the CRUD API;
- events per second sustained: inserters as fast as the gateway takes them, 100 subscribers;
- memory per idle WebSocket connection: the gateway's RSS before/after 1,000 idle sockets.
Load generator: bench/procs/realtime_load.py (its own process). Goal: p99 < 50 ms at 1,000 subscribers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from bench import stack
from bench.core import (
    PROCS,
    PROJECT,
    Context,
    Goal,
    Sample,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    md_table,
    python_env,
    run_loadgen,
    timed,
    wait_http_ok,
)
from bench.crud import DSN, pg

TITLE = "4. Realtime fan-out"
COL = "sc_bench_live"
ALIAS = "pg"
SUBSCRIBERS = [100, 1000]
RATE = {100: 20.0, 1000: 10.0}
IDLE_SOCKETS = 1000
GOAL_MS = 50.0


def run(ctx: Context) -> Section:
    try:
        pg([f'DROP TABLE IF EXISTS "{COL}"'])
    except Exception as exc:
        return Section("realtime", TITLE, skipped=f"PostgreSQL at {DSN} is not reachable ({exc!r})")
    allow = {"rule": "allow"}
    cfg = stack.gateway_config({"functions": {"enabled": False}, "crud": {ALIAS: {
        "type": "postgres", "conn": DSN,
        "collections": {COL: {"isRealtimeEnabled": True, "rules": {"read": allow, "create": allow}}}}}})
    gw, base = stack.start_gateway(ctx, "realtime-gateway", cfg)
    worker = stack.start_worker(ctx, "realtime-worker", ctx.results / "realtime-gateway.config.json")
    create = f"{base}/v1/api/{PROJECT}/crud/{ALIAS}/{COL}/create"
    wait_http_ok(create, b'{"op":"one","doc":{"room":"warm-up","t":0}}', timeout=40,
                 what="realtime gateway + worker", procs=[gw, worker])
    ws = base.replace("http://", "ws://") + f"/v1/api/{PROJECT}/socket/json"
    common = ["--ws", ws, "--create", create, "--col", COL, "--alias", ALIAS]

    memory = idle_memory(ctx, gw.pid, common)
    series = Series()
    throughput: list[dict[str, Any]] = []
    duration = max(2.0, ctx.duration)
    for rep in range(ctx.runs):
        for n in SUBSCRIBERS:
            with timed(ctx, f"realtime: run {rep + 1}/{ctx.runs}, {n} subscribers"):
                ctx.settle()
                d = run_loadgen("realtime_load.py", [*common, "--mode", "latency", "--subscribers", str(n),
                                                     "--rate", str(RATE[n]), "--duration", str(duration)],
                                timeout=duration + 120)
                series.add("delivery", n, Sample(rps=0.0, p50_ms=d["p50_ms"], p99_ms=d["p99_ms"],
                                                 p90_ms=d["p90_ms"], requests=d["deliveries"], errors=d["missed"],
                                                 extra={"last_p50_ms": d["last_p50_ms"],
                                                        "last_p99_ms": d["last_p99_ms"]}))
        with timed(ctx, f"realtime: run {rep + 1}/{ctx.runs}, events/s at 100 subscribers"):
            ctx.settle()
            throughput.append(run_loadgen("realtime_load.py", [*common, "--mode", "throughput", "--subscribers",
                                                               "100", "--duration", str(duration)],
                                          timeout=duration + 120))

    rows = []
    for n in SUBSCRIBERS:
        m = series.median("delivery", n)
        assert m is not None
        rows.append([f"{n:,}", f"{RATE[n]:g}/s", fmt_ms(m.p50_ms), fmt_ms(m.p90_ms), fmt_ms(m.p99_ms),
                     fmt_ms(m.extra.get("last_p99_ms")), fmt_int(m.requests), str(m.errors)])
    thr = sorted(throughput, key=lambda d: float(d["events_per_s"]))[len(throughput) // 2]
    at_1000 = series.median("delivery", 1000)
    assert at_1000 is not None
    goals = [Goal(f"p99 insert → delivery < {GOAL_MS:g} ms at 1,000 subscribers", at_1000.p99_ms < GOAL_MS,
                  f"p99 {fmt_ms(at_1000.p99_ms)} (p50 {fmt_ms(at_1000.p50_ms)}), {at_1000.errors} missed")]
    lines = [
        "One live query (`where: {room: r1}`, shared by every subscriber) on a schemaless PostgreSQL "
        "collection; documents inserted through the CRUD API carry their send time, and every subscriber "
        "records arrival - send (same clock: one machine). Subscribers and inserter live in "
        "`bench/procs/realtime_load.py`, one process (at 1,000 subscribers it receives 1,000 frames per "
        "event and shares the two cores with the gateway, so its own delay is part of the figures).",
        "",
        *md_table(["subscribers", "inserts", "p50", "p90", "p99", "p99 of last delivery per event",
                   "deliveries", "missed"], rows),
        "",
        f"Sustained, 100 subscribers, 8 inserters as fast as they are answered (median run): "
        f"**{float(thr['events_per_s']):,.0f} events/s** inserted, "
        f"{float(thr['deliveries_per_s']):,.0f} deliveries/s, p99 delivery {fmt_ms(float(thr['p99_ms']))}, "
        f"{int(thr['missed'])} missed.",
        "",
        f"Memory per idle WebSocket connection (gateway RSS with {IDLE_SOCKETS:,} idle sockets, minus before): "
        f"**{memory:.1f} KiB**.",
    ]
    from bench.report import latency_plot

    meds = [series.median("delivery", n) for n in SUBSCRIBERS]
    plot = latency_plot(ctx.docs, "bench-realtime.png", "Realtime: insert → delivery latency",
                        [f"{n:,}" for n in SUBSCRIBERS],
                        {q: [getattr(m, f"{q}_ms") if m else 0.0 for m in meds] for q in ("p50", "p90", "p99")},
                        case_label="WebSocket subscribers on one gateway", goal_ms=GOAL_MS)
    return Section("realtime", TITLE, lines, goals, [plot],
                   data={"series": series.to_json(), "throughput": throughput, "idle_kib_per_socket": memory})


def idle_memory(ctx: Context, gateway_pid: int, common: list[str]) -> float:
    """KiB of gateway RSS per idle WebSocket connection."""
    with timed(ctx, f"realtime: memory of {IDLE_SOCKETS} idle sockets"):
        time.sleep(0.5)
        before = stack.proc_rss_kib(gateway_pid)
        proc = subprocess.Popen([sys.executable, str(PROCS / "realtime_load.py"), *common, "--mode", "idle",
                                 "--subscribers", str(IDLE_SOCKETS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, **python_env()})
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline()
            if b"ready" not in line:
                raise RuntimeError(f"idle sockets did not open: {line!r}")
            time.sleep(1.0)
            after = stack.proc_rss_kib(gateway_pid)
        finally:
            proc.stdin.write(b"done\n")
            proc.stdin.flush()
            proc.wait(timeout=60)
    return (after - before) / IDLE_SOCKETS
