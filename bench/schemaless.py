"""Part 6: a filtered read on a schemaless collection of 1,000,000 documents vs a typed table with an index.

Issue 16, point 6: a schemaless SQL collection (id, doc JSON, _v) is indexed on `id` only unless its
config declares `indexes: [userId]` (adapters/indexes.py), so `where: {userId: <u>}` scans the table,
while the same read on a typed collection (a column per field) uses an index on `userId`. This part
measures the declared schemaless collection against the typed one on SQLite and PostgreSQL, and the
undeclared one beside them (the cost of not declaring).

One gateway (`space-cloud run --no-worker`) and one db worker (`space-cloud worker`) serve a project
of its own with two aliases, `sqlite` (a file in a temporary directory) and `pg` (BENCH_PG_URL); each
has a schemaless collection with `indexes: [userId]`, a typed one (userId, text, done) and a schemaless
one with nothing declared, with names unique to the run. The
first document of each goes in through the API (so the server creates the table its own way, in its
own namespace); the rest are bulk-inserted with SQL in the layout of that first row (writing a
million documents through the API would also publish a million change events), then an index on the
typed table's userId column, ANALYZE, and a check through the API that all answer the same (the
collections say `captureOutsideWrites: false`, so the bulk insert is not captured into the change log). wrk
reads 20 todos of a random user (20 documents per user) with a few connections (a scan takes a
long time) and a long timeout; the tables (and the project's PostgreSQL schema) are dropped at the end.
Goal: the declared schemaless read ≥ 0.7x the typed one.
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
    Goal,
    Sample,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    http_post,
    md_table,
    ratio,
    run_wrk,
    timed,
    wait_http_ok,
)
from bench.crud import DSN

TITLE = "6. Schemaless reads vs a typed table with an index"
TODOS_LUA = BENCH / "wrk" / "todos.lua"
PER_USER = 20
CLIENTS = 2
WRK_TIMEOUT = 60.0
GOAL = 0.7
MIN_SECONDS = 10.0
"""A scan of a million documents takes seconds: runs last at least this long to finish a few."""
MODES = ("schemaless, indexes: [userId]", "typed + index", "schemaless, no index")
"""The goal compares the first two; the third (no declared index) is the cost of not declaring it."""


def _sizes(quick: bool) -> tuple[int, int]:
    docs = 100_000 if quick else 1_000_000
    return docs, docs // PER_USER


def uid(i: int, users: int) -> str:
    return f"u{i % users:05d}"


def did(i: int) -> str:
    return f"d{i:07d}"


# ---------------------------------------------------------------- SQLite


def sqlite_fill(path: Path, col: str, typed: bool, docs: int, users: int) -> str:
    """Bulk-insert documents 1..docs-1 next to document 0 (written by the API); returns the table."""
    db = sqlite3.connect(path, timeout=60)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = [n for n in names if n == col or n.endswith("$" + col.lower()) or n.endswith("_" + col.lower())]
        if len(found) != 1:
            raise BenchError(f"cannot tell the table of {col} in {path}: {names}")
        table = found[0]
        q = '"' + table.replace('"', '""') + '"'
        cols = [r[1] for r in db.execute(f"PRAGMA table_info({q})")]
        (version,) = db.execute(f'SELECT "_v" FROM {q} LIMIT 1').fetchone()  # noqa: S608 (a catalog name, quoted)
        series = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
        if typed:
            if sorted(cols) != sorted(["id", "userId", "text", "done", "_v"]):
                raise BenchError(f"unexpected columns of the typed table {table}: {cols}")
            sql = (f'INSERT INTO {q} ("id", "userId", "text", "done", "_v") {series}'  # noqa: S608 (quoted)
                   "SELECT printf('d%07d', i), printf('u%05d', i % ?), 'todo ' || i, 0, ? FROM s")
            db.execute(sql, (docs - 1, users, version))
            db.execute(f'CREATE INDEX IF NOT EXISTS "{table}_userId" ON {q} ("userId")')
        else:
            if sorted(cols) != sorted(["id", "doc", "_v"]):
                raise BenchError(f"unexpected columns of the schemaless table {table}: {cols}")
            sql = (f'INSERT INTO {q} ("id", "doc", "_v") {series}'  # noqa: S608 (a catalog name, quoted)
                   "SELECT printf('d%07d', i), json_object('userId', printf('u%05d', i % ?), "
                   "'text', 'todo ' || i, 'done', json('false')), ? FROM s")
            db.execute(sql, (docs - 1, users, version))
        db.commit()
        db.execute(f"ANALYZE {q}")
        db.commit()
        return str(table)
    finally:
        db.close()


# ---------------------------------------------------------------- PostgreSQL


async def _pg_fill(col: str, typed: bool, docs: int, users: int) -> str:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        rows = await conn.fetch("SELECT table_schema, table_name FROM information_schema.tables "
                                "WHERE table_name = $1", col)
        if len(rows) != 1:
            raise BenchError(f"cannot tell the table of {col} on PostgreSQL: {[tuple(r) for r in rows]}")
        schema, table = rows[0]["table_schema"], rows[0]["table_name"]
        q = f'"{schema}"."{table}"'
        cols = [r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            schema, table)]
        version = await conn.fetchval(f'SELECT "_v" FROM {q} LIMIT 1')  # noqa: S608 (a catalog name, quoted)
        if typed:
            if sorted(cols) != sorted(["id", "userId", "text", "done", "_v"]):
                raise BenchError(f"unexpected columns of the typed table {q}: {cols}")
            sql = (f'INSERT INTO {q} ("id", "userId", "text", "done", "_v") '  # noqa: S608 (a catalog name, quoted)
                   "SELECT 'd' || lpad(i::text, 7, '0'), 'u' || lpad((i % $2)::text, 5, '0'), 'todo ' || i, false, $3 "
                   "FROM generate_series(1, $1::int - 1) AS i")
            await conn.execute(sql, docs, users, version)
            await conn.execute(f'CREATE INDEX IF NOT EXISTS "{table}_userId" ON {q} ("userId")')
        else:
            if sorted(cols) != sorted(["id", "doc", "_v"]):
                raise BenchError(f"unexpected columns of the schemaless table {q}: {cols}")
            sql = (f'INSERT INTO {q} ("id", "doc", "_v") '  # noqa: S608 (a catalog name, quoted)
                   "SELECT 'd' || lpad(i::text, 7, '0'), "
                   "jsonb_build_object('userId', 'u' || lpad((i % $2)::text, 5, '0'), 'text', 'todo ' || i, "
                   "'done', false), $3 FROM generate_series(1, $1::int - 1) AS i")
            await conn.execute(sql, docs, users, version)
        await conn.execute(f"ANALYZE {q}")
        return f"{schema}.{table}"
    finally:
        await conn.close()


async def _pg_drop(tables: list[str], schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=5)
    try:
        for t in tables:
            await conn.execute(f'DROP TABLE IF EXISTS "{t}"')  # in the default schema, if ever created there
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # the run's own project schema
    finally:
        await conn.close()


async def _pg_ok() -> None:
    import asyncpg

    conn = await asyncpg.connect(DSN, timeout=3)
    await conn.close()


# ---------------------------------------------------------------- the part


def run(ctx: Context) -> Section:
    docs, users = _sizes(ctx.quick)
    suffix = f"{os.getpid()}_{int(time.time()) % 1_000_000}"
    project = f"p6bench_{suffix}"  # its own namespace: a PostgreSQL schema of its own, dropped at the end
    sl, ty, sn = f"sc_bench_sl_{suffix}", f"sc_bench_ty_{suffix}", f"sc_bench_sn_{suffix}"
    try:
        asyncio.run(_pg_ok())
        pg_skip = ""
    except Exception as exc:
        pg_skip = f"PostgreSQL at {DSN} is not reachable ({exc!r})"
    work = Path(tempfile.mkdtemp(prefix="bench-p6-"))
    sqlite_file = work / "p6.db"
    allow = {"rule": "allow"}
    rules = {"read": allow, "create": allow}
    fields = {"userId": "string", "text": "string", "done": "boolean"}
    # the schemaless collection declares its index on userId (adapters/indexes.py), made with its table
    # no change-capture triggers: the million rows bulk-inserted with SQL below would otherwise each become
    # a change event in the outbox, relayed to the change log while the reads are measured
    off = {"captureOutsideWrites": False}
    collections = {sl: {"rules": rules, "indexes": ["userId"], **off}, ty: {"fields": fields, "rules": rules, **off},
                   sn: {"rules": rules, **off}}
    crud: dict[str, Any] = {"sqlite": {"type": "sqlite", "conn": str(sqlite_file), "collections": collections}}
    dbs = ["sqlite"]
    if not pg_skip:
        crud["pg"] = {"type": "postgres", "conn": DSN, "collections": collections}
        dbs.append("pg")
    cfg = {"projects": [{"id": project, "secret": stack.SECRET,
                         "modules": {"crud": crud, "functions": {"enabled": False}}}]}
    series = Series()
    tables: dict[str, str] = {}
    try:
        gw, base = stack.start_gateway(ctx, "p6-gateway", cfg)
        worker = stack.start_worker(ctx, "p6-worker", ctx.results / "p6-gateway.config.json")
        api = f"{base}/v1/api/{project}/crud"
        wait_http_ok(f"{api}/sqlite/{sl}/read", b'{"op":"count","find":{}}', timeout=40,
                     what="p6 gateway + worker", procs=[gw, worker])
        first = {"id": did(0), "userId": uid(0, users), "text": "todo 0", "done": False}
        for db in dbs:
            for col, typed in ((sl, False), (ty, True), (sn, False)):
                with timed(ctx, f"schemaless: {docs:,} documents into {db} {col}"):
                    status, body = http_post(f"{api}/{db}/{col}/create",
                                             json.dumps({"op": "one", "doc": first}).encode(), timeout=30)
                    if status != 200:
                        raise BenchError(f"creating {db}/{col} failed: {status} {body[:300]!r}")
                    tables[f"{db}/{col}"] = (sqlite_fill(sqlite_file, col, typed, docs, users) if db == "sqlite"
                                             else asyncio.run(_pg_fill(col, typed, docs, users)))
            check_same(api, db, [sl, ty, sn], docs, users)

        def measure(db: str, col: str, rep: int, duration: float) -> Sample:
            env = {"BENCH_METHOD": "POST", "BENCH_PATH": f"/v1/api/{project}/crud/{db}/{col}/read",
                   "BENCH_TEMPLATE": '{"op":"all","find":{"userId":"{UID}"},"options":{"limit":20}}',
                   "BENCH_USERS": str(users), "BENCH_UID_FMT": "u%05d", "BENCH_RUN": f"q{rep}"}
            return run_wrk(base, connections=CLIENTS, duration=duration, script=TODOS_LUA, env=env,
                           timeout=WRK_TIMEOUT)

        with timed(ctx, "schemaless: warm-up"):
            for db in dbs:
                for col in (sl, ty, sn):
                    measure(db, col, -1, max(1.0, ctx.warmup))
        for rep in range(ctx.runs):
            for db in dbs:
                with timed(ctx, f"schemaless: run {rep + 1}/{ctx.runs}, {db}"):
                    order = ((sl, MODES[0]), (ty, MODES[1]), (sn, MODES[2]))
                    for col, mode in order if rep % 2 == 0 else order[::-1]:
                        ctx.settle()
                        series.add(mode, db, measure(db, col, rep, max(ctx.duration, MIN_SECONDS)))
    finally:
        for name in ("p6-worker", "p6-gateway"):
            for proc in list(ctx.procs.running):
                if proc.name == name:
                    ctx.procs.stop(proc)
        if not pg_skip:
            try:
                asyncio.run(_pg_drop([sl, ty, sn], project))
            except Exception as exc:
                ctx.log(f"schemaless: could not drop the PostgreSQL tables: {exc!r}")
        shutil.rmtree(work, ignore_errors=True)
    return report(ctx, series, dbs, docs, users, pg_skip)


def check_same(api: str, db: str, cols: list[str], docs: int, users: int) -> None:
    """Every collection holds `docs` documents and answers the filtered read with the same 20."""
    body = json.dumps({"op": "all", "find": {"userId": uid(123, users)}, "options": {"limit": 20}}).encode()
    got = []
    for col in cols:
        status, raw = http_post(f"{api}/{db}/{col}/read", body, timeout=120)
        count_status, count = http_post(f"{api}/{db}/{col}/read", b'{"op":"count","find":{}}', timeout=120)
        if status != 200 or count_status != 200 or json.loads(count)["result"] != docs:
            raise BenchError(f"{db}/{col}: {status} {raw[:200]!r}, count {count_status} {count[:200]!r}")
        got.append(sorted(json.dumps(d, sort_keys=True) for d in json.loads(raw)["result"]))
    if any(g != got[0] for g in got) or len(got[0]) != PER_USER:
        raise BenchError(f"{db}: the schemaless and the typed reads differ: {[g[:2] for g in got]}")


DB_NAMES = {"sqlite": "SQLite", "pg": "PostgreSQL"}


def report(ctx: Context, series: Series, dbs: list[str], docs: int, users: int, pg_skip: str) -> Section:
    rows, goals = [], []
    for db in dbs:
        s, t, n = (series.median(mode, db) for mode in MODES)
        assert s is not None and t is not None
        r = ratio(s.rps, t.rps)
        rn = ratio(n.rps if n else None, t.rps)
        rows.append([DB_NAMES[db], f"{_rps(s.rps)} req/s (p50 {fmt_ms(s.p50_ms)})",
                     f"{_rps(t.rps)} req/s (p50 {fmt_ms(t.p50_ms)})", _ratio(r), f"≥ {GOAL}x",
                     "-" if n is None else f"{_rps(n.rps)} req/s (p50 {fmt_ms(n.p50_ms)})", _ratio(rn),
                     f"{s.errors} / {t.errors} / {n.errors if n else '-'}"])
        goals.append(Goal(f"{DB_NAMES[db]}: filtered read on {docs:,} schemaless documents (`indexes: [userId]` "
                          f"declared) ≥ {GOAL}x the typed table with an index", r is not None and r >= GOAL,
                          f"{_rps(s.rps)} vs {_rps(t.rps)} req/s ({_ratio(r)}); not declared: "
                          f"{_rps(n.rps) if n else '-'} req/s ({_ratio(rn)})"))
    if pg_skip:
        goals.append(Goal("PostgreSQL: schemaless vs typed filtered read", None, pg_skip))
    lines = [
        f"{docs:,} documents of {users:,} users ({PER_USER} each, spread over the table as if written over "
        "time); the read: `{\"op\":\"all\",\"find\":{\"userId\":<random user>},\"options\":{\"limit\":20}}` "
        f"through the gateway and the db worker, wrk with {CLIENTS} connections (timeout {WRK_TIMEOUT:g} s). "
        "Three collections of the same documents: schemaless (id, doc JSON, _v) with `indexes: [userId]` "
        "declared in its config (the server makes an index on the document path: an expression index on "
        "`json_extract(doc, '$.userId')` / `doc #> '{userId}'`, made with the table); typed, declared with "
        "fields userId/text/done, plus an index on the userId column; and schemaless as it is created on "
        "first use with nothing declared (indexed on id only: every read scans the table), the cost of not "
        "declaring the index. Ratio: ÷ the typed table's throughput; the goal is on the declared one."
        + (" Quick run: 100,000 documents, not 1,000,000." if ctx.quick else ""),
        "",
        *md_table(["database", "schemaless + `indexes: [userId]`", "typed + index", "ratio", "goal",
                   "schemaless, nothing declared", "ratio", "errors decl. / typed / undecl."], rows),
    ]
    if pg_skip:
        lines += ["", f"PostgreSQL not measured: {pg_skip}"]
    from bench.report import bar_plot

    plot = bar_plot(ctx.docs, "bench-schemaless.png", f"Filtered read, {docs:,} documents", list(MODES),
                    [DB_NAMES[d] for d in dbs], _renamed(series, dbs), case_label="database", latency="p50_ms")
    return Section("schemaless", TITLE, lines, goals, [plot], data={"series": series.to_json(), "documents": docs})


def _rps(v: float) -> str:
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 100 else fmt_int(v)


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.4f}x" if r < 0.01 else fmt_ratio(r)


def _renamed(series: Series, dbs: list[str]) -> Series:
    out = Series()
    for (system, case), samples in series.samples.items():
        for s in samples:
            out.add(system, DB_NAMES.get(case, case), s)
    return out
