"""Part 3: CRUD through the gateway on PostgreSQL vs a hand-written FastAPI + asyncpg service.

Same table (a typed collection: id, grp, name, score), same queries: read by id, a filtered read of
20 rows (`grp = ?`, indexed), an insert. Space Cloud: `space-cloud run --no-worker` + `space-cloud worker`
(separate processes) with Space Cloud bodies on `/v1/api/bench/crud/pg/<table>/read|create`; the peer:
bench/procs/fastapi_crud.py. wrk drives both with bench/wrk/templated.lua (a random id / group per
request, a fresh id per insert). Goal: at least 0.7x the peer's throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from bench import stack
from bench.core import (
    BENCH,
    PROCS,
    PROJECT,
    BenchError,
    Context,
    Goal,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    free_port,
    http_post,
    md_table,
    python_env,
    ratio,
    run_wrk,
    timed,
    wait_http_ok,
)

TITLE = "3. CRUD on PostgreSQL (gateway vs FastAPI + asyncpg)"
DSN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "sc_bench_items"
GROUPS = 500
PER_GROUP = 20
ROWS = GROUPS * PER_GROUP
CLIENTS = 32
GOAL = 0.7
TEMPLATED = BENCH / "wrk" / "templated.lua"

SC = "space-cloud"
PEER = "FastAPI + asyncpg"

# op → (Space Cloud path suffix, Space Cloud body, peer path, peer body)
OPS: dict[str, tuple[str, str, str, str]] = {
    "read by id": ("read", '{"op":"one","find":{"id":"{ID}"}}', "/read_one", '{"id":"{ID}"}'),
    "filtered read (20 rows)": ("read", '{"op":"all","find":{"grp":{GRP}},"options":{"limit":20}}',
                                "/read_many", '{"grp":{GRP}}'),
    "insert": ("create", '{"op":"one","doc":{"id":"{NEW}","grp":7,"name":"new","score":1}}',
               "/insert", '{"doc":{"id":"{NEW}","grp":7,"name":"new","score":1}}'),
}


async def _pg(statements: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=3)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def pg(statements: list[str]) -> None:
    asyncio.run(_pg(statements))


def crud_module() -> dict[str, Any]:
    allow = {"rule": "allow"}
    return {"pg": {"type": "postgres", "conn": DSN, "collections": {
        TABLE: {"fields": {"grp": "integer", "name": "string", "score": "integer"},
                "rules": {"read": allow, "create": allow}}}}}


def seed(base: str) -> None:
    url = f"{base}/v1/api/{PROJECT}/crud/pg/{TABLE}/create"
    batch: list[dict[str, Any]] = []
    for i in range(ROWS):
        batch.append({"id": f"i{i}", "grp": i % GROUPS, "name": f"item {i}", "score": i % 97})
        if len(batch) == 1000:
            status, body = http_post(url, json.dumps({"op": "all", "doc": batch}).encode(), timeout=60)
            if status != 200:
                raise BenchError(f"seeding failed: {status} {body[:300]!r}")
            batch = []


def run(ctx: Context) -> Section:
    try:
        pg([f'DROP TABLE IF EXISTS "{TABLE}"'])
    except Exception as exc:
        return Section("crud", TITLE, skipped=f"PostgreSQL at {DSN} is not reachable ({exc!r})")
    cfg = stack.gateway_config({"crud": crud_module(), "functions": {"enabled": False}})
    gw, base = stack.start_gateway(ctx, "crud-gateway", cfg)
    worker = stack.start_worker(ctx, "crud-worker", ctx.results / "crud-gateway.config.json")
    peer_port = free_port()
    peer = ctx.procs.start("fastapi-crud", [sys.executable, str(PROCS / "fastapi_crud.py"), "--port", str(peer_port),
                                            "--dsn", DSN, "--table", TABLE], env=python_env())
    count = f"{base}/v1/api/{PROJECT}/crud/pg/{TABLE}/read"
    wait_http_ok(count, b'{"op":"count","find":{}}', timeout=40, what="crud gateway + worker", procs=[gw, worker])
    with timed(ctx, f"crud: seeding {ROWS} rows"):
        seed(base)
        pg([f'CREATE INDEX IF NOT EXISTS "{TABLE}_grp" ON "{TABLE}" ("grp")', f'ANALYZE "{TABLE}"'])
    peer_base = f"http://127.0.0.1:{peer_port}"
    wait_http_ok(f"{peer_base}/read_one", b'{"id":"i1"}', timeout=30, what="FastAPI peer", procs=[peer])

    def measure(system: str, op: str, rep: int, duration: float) -> Any:
        sc_kind, sc_body, peer_path, peer_body = OPS[op]
        if system == SC:
            path, template, url = f"/v1/api/{PROJECT}/crud/pg/{TABLE}/{sc_kind}", sc_body, base
        else:
            path, template, url = peer_path, peer_body, peer_base
        env = {"BENCH_PATH": path, "BENCH_TEMPLATE": template, "BENCH_ROWS": str(ROWS),
               "BENCH_GROUPS": str(GROUPS), "BENCH_RUN": f"{'s' if system == SC else 'p'}{rep}"}
        return run_wrk(url, connections=CLIENTS, duration=duration, script=TEMPLATED, env=env)

    with timed(ctx, "crud: warm-up"):
        for op in OPS:
            for system in (SC, PEER):
                measure(system, op, -1, max(1.0, ctx.warmup))
    series = Series()
    for rep in range(ctx.runs):
        for op in OPS:
            with timed(ctx, f"crud: run {rep + 1}/{ctx.runs}, {op}"):
                for system in (SC, PEER):
                    ctx.settle()
                    series.add(system, op, measure(system, op, rep, ctx.duration))

    rows, goals = [], []
    for op in OPS:
        sc, peer_m = series.median(SC, op), series.median(PEER, op)
        assert sc is not None and peer_m is not None
        r = ratio(sc.rps, peer_m.rps)
        rows.append([op, fmt_int(sc.rps), fmt_int(peer_m.rps), fmt_ratio(r),
                     f"{fmt_ms(sc.p50_ms)} / {fmt_ms(peer_m.p50_ms)}",
                     f"{fmt_ms(sc.p99_ms)} / {fmt_ms(peer_m.p99_ms)}", f"{sc.errors} / {peer_m.errors}"])
        goals.append(Goal(f"{op}: ≥ {GOAL}x the FastAPI + asyncpg throughput", r is not None and r >= GOAL,
                          f"{fmt_int(sc.rps)} vs {fmt_int(peer_m.rps)} req/s ({fmt_ratio(r)})"))
    lines = [
        f"Table `{TABLE}` ({ROWS:,} rows, {GROUPS} groups of {PER_GROUP}, index on `grp`), {CLIENTS} wrk "
        "connections. Space Cloud: gateway → NATS → db worker → asyncpg (pool of 10) and back, with rules "
        "and a change event per insert; the peer: one FastAPI process with an asyncpg pool of 10, on "
        "uvloop + httptools, no access log.",
        "",
        *md_table(["operation", "space-cloud req/s", "FastAPI req/s", "ratio", "p50 sc / peer", "p99 sc / peer",
                   "errors sc / peer"], rows),
    ]
    for proc in (gw, worker, peer):  # idle from here on: out of the way of the next parts
        ctx.procs.stop(proc)
    from bench.report import bar_plot

    plot = bar_plot(ctx.docs, "bench-crud.png", "CRUD on PostgreSQL", [SC, PEER], list(OPS), series,
                    case_label="operation")
    return Section("crud", TITLE, lines, goals, [plot], data={"series": series.to_json()})
