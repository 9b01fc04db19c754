"""Part 8: what change capture costs on the create path, SQLite and PostgreSQL.

Every committed write on a SQL database is captured by triggers into the namespace's outbox in the
writing transaction, and the db worker's relay publishes the outbox to the change log (JetStream) and
deletes what it published (adapters/sql/changelog.py, worker/changelog.py). A collection with
`captureOutsideWrites: false` has no triggers: the worker publishes its own writes to the same log after
the commit. This part measures create-one throughput and CPU per request with capture on (the default)
and off, side by side.

One gateway (`space-cloud run --no-worker`) and one db worker (`space-cloud worker`) serve a project of
its own with two aliases, `sqlite` (a file in a temporary directory) and `pg` (BENCH_PG_URL), each with
two realtime collections of the same shape: `cap_on` (the default) and `cap_off`
(`captureOutsideWrites: false`). The first create makes each table (and its triggers, which are checked
in the database's catalog); wrk with 32 connections creates todos (`{"op":"one","doc":{userId, text,
done}}`), on and off alternating within every round. CPU per request: the gateway, the db worker (the
relay runs there too), the nats-server, and on PostgreSQL the database server's processes (all of them:
anything else that uses the server on this machine is counted too, the same for both cells).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import stack
from bench.core import (
    BENCH,
    BenchError,
    Context,
    Sample,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    http_post,
    md_table,
    proc_cpu_seconds,
    ratio,
    run_wrk,
    timed,
    wait_http_ok,
)
from bench.crud import DSN

TITLE = "8. What change capture costs"
TODOS_LUA = BENCH / "wrk" / "todos.lua"
CLIENTS = 32
ON, OFF = "capture on (default)", "captureOutsideWrites: false"
MODES = (ON, OFF)
COLS = {ON: "cap_on", OFF: "cap_off"}
DB_NAMES = {"sqlite": "SQLite", "pg": "PostgreSQL"}
BODY = '{"op":"one","doc":{"userId":"{UID}","text":"new {NEW}","done":false}}'


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine (postmaster, backends, background workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(entry))
            except OSError:
                continue
    return out


def cpu_split(pids: dict[str, int], pg: bool) -> dict[str, float]:
    got = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
    if pg:
        got["PostgreSQL"] = sum(proc_cpu_seconds(p) for p in postgres_pids())
    return got


def sqlite_triggers(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path, timeout=30)
    try:
        rows = db.execute("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    finally:
        db.close()
    return {col: sum(1 for (t,) in rows if t == col or t.lower().endswith(("$" + col, "_" + col)))
            for col in COLS.values()}


async def _pg_triggers(schema: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        rows = await conn.fetch("SELECT event_object_table AS t FROM information_schema.triggers "
                                "WHERE event_object_schema = $1", schema)
    finally:
        await conn.close()
    return {col: sum(1 for r in rows if r["t"] == col) for col in COLS.values()}


async def _pg_drop(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _pg_ok() -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=3)
    await conn.close()


def run(ctx: Context) -> Section:
    suffix = f"{os.getpid()}_{int(time.time()) % 1_000_000}"
    project = f"p8bench_{suffix}"  # its own namespace (a PostgreSQL schema of its own, dropped at the end)
    try:
        asyncio.run(_pg_ok())
        pg_skip = ""
    except Exception as exc:
        pg_skip = f"PostgreSQL at {DSN} is not reachable ({exc!r})"
    work = Path(tempfile.mkdtemp(prefix="bench-p8-"))
    sqlite_file = work / "p8.db"
    allow = {"rule": "allow"}
    rules = {"read": allow, "create": allow}
    collections = {COLS[ON]: {"isRealtimeEnabled": True, "rules": rules},
                   COLS[OFF]: {"isRealtimeEnabled": True, "rules": rules, "captureOutsideWrites": False}}
    crud: dict[str, Any] = {"sqlite": {"type": "sqlite", "conn": str(sqlite_file), "collections": collections}}
    dbs = ["sqlite"]
    if not pg_skip:
        crud["pg"] = {"type": "postgres", "conn": DSN, "collections": collections}
        dbs.append("pg")
    cfg = {"projects": [{"id": project, "secret": stack.SECRET,
                         "modules": {"crud": crud, "functions": {"enabled": False}}}]}
    series = Series()
    triggers: dict[str, dict[str, int]] = {}
    try:
        gw, base = stack.start_gateway(ctx, "p8-gateway", cfg)
        worker = stack.start_worker(ctx, "p8-worker", ctx.results / "p8-gateway.config.json")
        api = f"{base}/v1/api/{project}/crud"
        first = json.dumps({"op": "one", "doc": {"userId": "u000", "text": "first", "done": False}}).encode()
        wait_http_ok(f"{api}/sqlite/{COLS[ON]}/create", first, timeout=40, what="p8 gateway + worker",
                     procs=[gw, worker])
        for db in dbs:
            for col in COLS.values():
                status, body = http_post(f"{api}/{db}/{col}/create", first, timeout=30)
                if status != 200:
                    raise BenchError(f"creating in {db}/{col} failed: {status} {body[:300]!r}")
        triggers["sqlite"] = sqlite_triggers(sqlite_file)
        if not pg_skip:
            triggers["pg"] = asyncio.run(_pg_triggers(project))
        for db, got in triggers.items():  # the comparison means something only if on has triggers and off none
            if not got[COLS[ON]] or got[COLS[OFF]]:
                raise BenchError(f"{db}: triggers per table {got}: expected some on {COLS[ON]}, none on {COLS[OFF]}")
        pids = {"gateway": gw.pid, "db worker": worker.pid}
        nats_pid = ctx.shared.get("nats_pid")
        if nats_pid:
            pids["nats-server"] = int(nats_pid)

        def measure(db: str, mode: str, rep: int, duration: float) -> Sample:
            env = {"BENCH_METHOD": "POST", "BENCH_PATH": f"/v1/api/{project}/crud/{db}/{COLS[mode]}/create",
                   "BENCH_TEMPLATE": BODY, "BENCH_USERS": "500", "BENCH_RUN": f"{db}{mode[:2]}{rep}"}
            cpu0 = cpu_split(pids, db == "pg")
            sample = run_wrk(base, connections=CLIENTS, duration=duration, script=TODOS_LUA, env=env)
            cpu1 = cpu_split(pids, db == "pg")
            for k, v in cpu1.items():
                if sample.requests:
                    sample.extra[f"cpu_us_per_req:{k}"] = (v - cpu0.get(k, 0.0)) / sample.requests * 1e6
            sample.extra["cpu_us_per_req"] = sum(v for k, v in sample.extra.items() if k.startswith("cpu_us_per_req:"))
            return sample

        with timed(ctx, "capture: warm-up"):
            for db in dbs:
                for mode in MODES:
                    measure(db, mode, -1, max(1.0, ctx.warmup))
        for rep in range(ctx.runs):
            for db in dbs:
                with timed(ctx, f"capture: run {rep + 1}/{ctx.runs}, {db}"):
                    for mode in MODES if rep % 2 == 0 else MODES[::-1]:
                        ctx.settle()
                        series.add(mode, db, measure(db, mode, rep, ctx.duration))
    finally:
        for name in ("p8-worker", "p8-gateway"):
            for proc in list(ctx.procs.running):
                if proc.name == name:
                    ctx.procs.stop(proc)
        if not pg_skip:
            try:
                asyncio.run(_pg_drop(project))
            except Exception as exc:
                ctx.log(f"capture: could not drop the PostgreSQL schema {project}: {exc!r}")
        shutil.rmtree(work, ignore_errors=True)
    return report(ctx, series, dbs, triggers, pg_skip)


def _cpu(m: Sample, pg: bool) -> str:
    keys = ["gateway", "db worker", "nats-server"] + (["PostgreSQL"] if pg else [])
    parts = [f"{m.extra.get(f'cpu_us_per_req:{k}', 0.0):,.0f} {k}" for k in keys if f"cpu_us_per_req:{k}" in m.extra]
    return f"**{m.extra.get('cpu_us_per_req', 0.0):,.0f} µs** (" + " + ".join(parts) + ")"


def report(ctx: Context, series: Series, dbs: list[str], triggers: dict[str, dict[str, int]], pg_skip: str
           ) -> Section:
    rows = []
    for db in dbs:
        on, off = series.median(ON, db), series.median(OFF, db)
        for mode, m in ((ON, on), (OFF, off)):
            if m is None:
                continue
            rows.append([DB_NAMES[db], mode, f"{fmt_int(m.rps)} req/s", fmt_ms(m.p50_ms), fmt_ms(m.p99_ms),
                         _cpu(m, db == "pg"), str(m.errors)])
        if on and off:
            cost = on.extra.get("cpu_us_per_req", 0.0) - off.extra.get("cpu_us_per_req", 0.0)
            rows.append([DB_NAMES[db], "**on ÷ off**", f"**{fmt_ratio(ratio(on.rps, off.rps))}**", "", "",
                         f"capture costs {cost:+,.0f} µs per create", ""])
    lines = [
        "Create one todo through the gateway and the db worker (wrk, "
        f"{CLIENTS} connections), into a realtime collection with change capture on (triggers copy each row "
        "change into the outbox in the writing transaction; the worker's relay publishes it to the change "
        "log and deletes it) and into one with `captureOutsideWrites: false` (no triggers; the worker "
        "publishes its own writes to the same log after the commit). Both cells publish one change event "
        "per create. The two alternate within every round; medians of the runs. CPU per request: the gateway, "
        "the db worker (with its relay), the nats-server, and on PostgreSQL all of the database server's "
        "processes (other users of the server are counted too, in both cells alike). Triggers found per "
        "table (from the database's catalog): " + "; ".join(
            f"{DB_NAMES[db]}: " + ", ".join(f"{n} on `{col}`" for col, n in got.items())
            for db, got in triggers.items())
        + ".",
        "",
        *md_table(["database", "collection", "creates", "p50", "p99", "CPU / create", "errors"], rows),
    ]
    if pg_skip:
        lines += ["", f"PostgreSQL not measured: {pg_skip}"]
    return Section("capture", TITLE, lines, [], [], data={"series": series.to_json(), "triggers": triggers})
