"""Part 7: live queries at scale on one gateway (issue 16's targets).

- **10,000 per-user live queries** (`where: {userId: u<i>}`, one socket each, the todo app's shape):
  change events are put into the change log at a steady rate, each a new document of one random user,
  so each matches exactly one of the 10,000 queries. Per rate: p50/p99 insert → delivery, gateway CPU
  per insert. The sustained rate is the highest with p99 < 50 ms and nothing missed.
- **memory growth** of the gateway for 1,000 inserts that match none of the 10,000 queries;
- **one query shared by 1,000 sockets**: 20 events a second, each delivered to every socket: p99 and
  gateway CPU per delivered frame;
- the same shared query with the gateway on **two processes** (`--processes 2`, SO_REUSEPORT): the
  sockets spread over both, each process fans out to its own;
- **memory per idle WebSocket** (RSS with 2,000 idle sockets, minus before, on a fresh gateway);
- **end to end**: the same 10,000 queries, documents created through the CRUD API (gateway → NATS →
  db worker → SQLite → change log → gateway): p99 insert → delivery per rate.

Events are published to the change log's subject as the db worker's relay does after a commit
(`bench/procs/realtime_scale_load.py inject`): that measures the gateway's matching and fan-out, not
the write path (part 3 and part 5 measure writes). Subscribers and the injector run in their own
processes; everything shares the machine's cores.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

from bench import stack
from bench.core import (
    PROCS,
    PROJECT,
    BenchError,
    Context,
    Goal,
    Proc,
    Section,
    fmt_ms,
    free_port,
    md_table,
    proc_cpu_seconds,
    python_env,
    run_loadgen,
    timed,
    wait_until,
)

TITLE = "7. Live queries at scale"
ALIAS, COL = "db", "todos"
USERS = 10_000
SHARED = 1_000
SHARED_RATE = 20.0
IDLE = 2_000
NON_MATCHING = 1_000
RATES = [250, 500, 1000, 1500, 2000]
E2E_RATES = [100, 200, 400]
SUBSCRIBER_PROCS = 2
GOAL_P99_MS = 50.0
LOAD = "realtime_scale_load.py"


@dataclass
class Loader:
    """One subscriber process, driven over its stdin/stdout."""

    proc: subprocess.Popen[bytes]

    def line(self, timeout: float = 120.0) -> dict[str, Any]:
        out = self.proc.stdout
        assert out is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = out.readline()
            if not raw:
                raise BenchError(f"subscriber process ended (exit {self.proc.poll()})")
            if raw.startswith(b"{"):
                got: dict[str, Any] = json.loads(raw)
                return got
        raise BenchError("subscriber process did not answer")

    def send(self, text: str) -> None:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(text.encode() + b"\n")
        stdin.flush()

    def report(self) -> dict[str, Any]:
        self.send("report")
        return self.line()

    def close(self) -> None:
        try:
            self.send("done")
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def subscribers(ws: str, count: int, *, procs: int, shared: bool = False, idle: bool = False) -> list[Loader]:
    loaders = []
    per = -(-count // procs)
    for n in range(procs):
        first, size = n * per, min(per, count - n * per)
        if size <= 0:
            break
        cmd = [sys.executable, str(PROCS / LOAD), "subscribe", "--ws", ws, "--col", COL, "--alias", ALIAS,
               "--first", str(first), "--count", str(size)]
        cmd += ["--shared"] if shared else []
        cmd += ["--idle"] if idle else []
        loaders.append(Loader(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               env={**os.environ, **python_env()})))
    for loader in loaders:
        if not loader.line(timeout=300).get("ready"):
            raise BenchError("subscribers did not open")
    return loaders


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def collect(loaders: list[Loader]) -> dict[str, Any]:
    lat: list[float] = []
    deliveries = 0
    for loader in loaders:
        r = loader.report()
        deliveries += int(r["deliveries"])
        lat.extend(r["latencies_ms"])
    return {"deliveries": deliveries, "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99), "max_ms": max(lat, default=0.0)}


def inject(ctx: Context, subject: str, rate: float, duration: float, users: int, *, nobody: bool = False
           ) -> dict[str, Any]:
    args = ["inject", "--nats", ctx.nats_url, "--subject", subject, "--rate", str(rate), "--duration",
            str(duration), "--users", str(users)]
    return run_loadgen(LOAD, [*args, "--nobody"] if nobody else args, timeout=duration + 120)


def tree(pid: int) -> list[int]:
    """A process and its children (the gateway's `--processes` siblings)."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return out


def cpu_of(pid: int) -> float:
    return sum(proc_cpu_seconds(p) for p in tree(pid))


def measured(ctx: Context, gw: Proc, loaders: list[Loader], load: Any, rate: float, duration: float,
             users: int, fanout: int = 1) -> dict[str, Any]:
    """Run `load(rate, duration)` (inject or insert), wait for the tail, and report latencies, deliveries
    and the CPU of the gateway's processes."""
    collect(loaders)  # drop anything from before
    cpu0 = cpu_of(gw.pid)
    sent = load(rate, duration)
    expected = sent["sent"] * fanout
    deadline = time.monotonic() + 5
    time.sleep(0.3)
    cpu1 = cpu_of(gw.pid)
    got = collect(loaders)
    while got["deliveries"] < expected and time.monotonic() < deadline:  # late ones (counted as missed if never)
        time.sleep(0.3)
        more = collect(loaders)
        got = {**got, "deliveries": got["deliveries"] + more["deliveries"],
               "p99_ms": max(got["p99_ms"], more["max_ms"]), "max_ms": max(got["max_ms"], more["max_ms"])}
    cpu = cpu1 - cpu0
    return {"rate": rate, "sent": sent["sent"], "inject_s": sent["seconds"], "expected": expected, **got,
            "missed": expected - got["deliveries"], "cpu_s": cpu, "cpu_per_insert_ms": cpu / sent["sent"] * 1000,
            "cpu_per_frame_us": cpu / max(got["deliveries"], 1) * 1e6}


def spy(ctx: Context, pid: int, label: str, seconds: float, load: Any) -> dict[str, Any]:
    """py-spy on the gateway (not a measured run) while `load()` runs; shares of samples (bench.pocketbase)."""
    import shutil

    from bench.pocketbase import summarize

    if shutil.which("py-spy") is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw = ctx.results / f"scale-profile-{label}.raw.txt"
    cmd = ["py-spy", "record", "--nonblocking", "--nolineno", "--rate", "200", "--pid", str(pid),
           "--duration", str(round(seconds)), "--format", "raw", "-o", str(raw)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        load()
        proc.wait(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return summarize(raw) if raw.exists() else {"samples": 0}


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def start(ctx: Context, name: str, *, worker: bool = False, flags: tuple[str, ...] = ()) -> tuple[Proc, str, str]:
    """`space-cloud run` (with `flags`) on a free port, the SQLite alias `db` with `todos` open to all."""
    allow = {"rule": "allow"}
    cfg = stack.gateway_config({"functions": {"enabled": False}, "crud": {ALIAS: {
        "type": "sqlite", "conn": str(ctx.results / f"{name}.db"),
        "collections": {COL: {"isRealtimeEnabled": True, "indexes": ["userId"],
                              "rules": {"read": allow, "create": allow}}}}}})
    path = ctx.results / f"{name}.config.json"
    path.write_text(json.dumps(cfg, indent=2))
    port = free_port()
    cmd = stack.space_cloud(ctx, "run", "--nats", ctx.nats_url, "--config", str(path), "--host", "127.0.0.1",
                            "--port", str(port), "--log-level", "warning", *flags)
    if not worker:
        cmd.append("--no-worker")
    gw = ctx.procs.start(name, cmd, env={**python_env(), "SPACE_CLOUD_HOME": str(ctx.results / "home")})
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(base), timeout=60, what=f"{name}", procs=[gw])
    ws = base.replace("http://", "ws://") + f"/v1/api/{PROJECT}/socket/json"
    return gw, base, ws


def _healthy(base: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/v1/api/health", timeout=2):  # noqa: S310 (loopback)
            return True
    except OSError as exc:
        return getattr(exc, "code", None) == 503  # up; some dependency (no worker) not


def run(ctx: Context) -> Section:
    duration = max(2.0, ctx.duration)
    rates = [500, 1000] if ctx.quick else RATES
    e2e_rates = [100] if ctx.quick else E2E_RATES
    subject = f"sc.{PROJECT}.changes.{ALIAS}.{COL}"
    data: dict[str, Any] = {"rates": rates, "e2e_rates": e2e_rates}

    def injector(users: int, nobody: bool = False) -> Any:
        return lambda rate, seconds: inject(ctx, subject, rate, seconds, users, nobody=nobody)

    # memory per idle socket, on a fresh gateway (freed memory of earlier sockets would hide it)
    gw, _, ws = start(ctx, "scale-idle")
    with timed(ctx, f"scale: {IDLE:,} idle sockets"):
        time.sleep(0.5)
        before = stack.proc_rss_kib(gw.pid)
        idle = subscribers(ws, IDLE, procs=1, idle=True)
        time.sleep(1.0)
        after = stack.proc_rss_kib(gw.pid)
        for loader in idle:
            loader.close()
    data["idle_kib_per_socket"] = (after - before) / IDLE
    ctx.procs.stop(gw)

    gw, _, ws = start(ctx, "scale-gateway")
    with timed(ctx, f"scale: {USERS:,} per-user live queries"):
        rss0 = stack.proc_rss_kib(gw.pid)
        users = subscribers(ws, USERS, procs=SUBSCRIBER_PROCS)
        rss_subscribed = stack.proc_rss_kib(gw.pid)
    per_user: dict[str, list[dict[str, Any]]] = {str(r): [] for r in rates}
    growth: list[float] = []
    profiles: dict[str, dict[str, Any]] = {}
    try:
        inject(ctx, subject, 500, 1.0, USERS)  # warm-up
        collect(users)
        for rep in range(ctx.runs):
            for rate in rates:
                with timed(ctx, f"scale: run {rep + 1}/{ctx.runs}, {rate}/s over {USERS:,} queries"):
                    ctx.settle()
                    per_user[str(rate)].append(measured(ctx, gw, users, injector(USERS), rate, duration, USERS))
            with timed(ctx, f"scale: run {rep + 1}/{ctx.runs}, {NON_MATCHING:,} non-matching inserts"):
                inject(ctx, subject, 500, NON_MATCHING / 500, USERS, nobody=True)  # the allocator's steady state
                time.sleep(0.5)
                m0 = stack.proc_rss_kib(gw.pid)
                inject(ctx, subject, 500, NON_MATCHING / 500, USERS, nobody=True)
                time.sleep(0.5)
                growth.append(stack.proc_rss_kib(gw.pid) - m0)
        if not ctx.quick:
            with timed(ctx, f"scale: py-spy on the gateway, 1,000/s over {USERS:,} queries"):
                profiles["per-user, 1,000/s"] = spy(ctx, gw.pid, "per-user", duration,
                                                    lambda: inject(ctx, subject, 1000, duration, USERS))
                collect(users)
    finally:
        for loader in users:
            loader.close()
    data.update(per_user=per_user, growth_kib=growth, rss_kib={"start": rss0, "subscribed": rss_subscribed})
    ctx.procs.stop(gw)

    # one shared query, on one gateway process and on two
    shared: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    gateways = {n: start(ctx, f"scale-shared-{n}", flags=("--processes", str(n))) for n in (1, 2)}
    loaders = {}
    try:
        for n, (_, _, url) in gateways.items():
            with timed(ctx, f"scale: one query shared by {SHARED:,} sockets, {n} gateway process(es)"):
                loaders[n] = subscribers(url, SHARED, procs=SUBSCRIBER_PROCS, shared=True)
                inject(ctx, subject, SHARED_RATE, 1.0, 0)
                collect(loaders[n])
        for rep in range(ctx.runs):
            for n, (proc, _, _) in gateways.items():  # interleaved: both see the same machine
                with timed(ctx, f"scale: run {rep + 1}/{ctx.runs}, {SHARED_RATE:g}/s to {SHARED:,} sockets, "
                                f"{n} process(es)"):
                    ctx.settle()
                    shared[str(n)].append(measured(ctx, proc, loaders[n], injector(0), SHARED_RATE, duration, 0,
                                                   fanout=SHARED))
        if not ctx.quick:
            with timed(ctx, f"scale: py-spy on the gateway, {SHARED_RATE:g}/s to {SHARED:,} sockets, 1 process"):
                profiles[f"one query, {SHARED:,} sockets"] = spy(
                    ctx, gateways[1][0].pid, "shared", duration, lambda: inject(ctx, subject, SHARED_RATE, duration, 0))
                collect(loaders[1])
    finally:
        for group in loaders.values():
            for loader in group:
                loader.close()
        for proc, _, _ in gateways.values():
            ctx.procs.stop(proc)
    data["shared"] = shared
    data["profiles"] = profiles

    # end to end: documents created through the CRUD API, the db worker where `space-cloud run` puts it
    e2e: dict[str, list[dict[str, Any]]] = {str(r): [] for r in e2e_rates}
    gw, base, ws = start(ctx, "scale-e2e", worker=True)
    create = f"{base}/v1/api/{PROJECT}/crud/{ALIAS}/{COL}/create"

    def inserter(rate: float, seconds: float) -> dict[str, Any]:
        return run_loadgen(LOAD, ["insert", "--create", create, "--rate", str(rate), "--duration", str(seconds),
                                  "--users", str(USERS)], timeout=seconds + 180)

    with timed(ctx, f"scale: {USERS:,} per-user live queries, end to end"):
        users = subscribers(ws, USERS, procs=SUBSCRIBER_PROCS)
    try:
        inserter(50, 1.0)
        collect(users)
        for rep in range(ctx.runs):
            for rate in e2e_rates:
                with timed(ctx, f"scale: run {rep + 1}/{ctx.runs}, {rate}/s through the CRUD API"):
                    ctx.settle()
                    e2e[str(rate)].append(measured(ctx, gw, users, inserter, rate, duration, USERS))
        if not ctx.quick:
            with timed(ctx, f"scale: py-spy on the gateway + db worker, {e2e_rates[0]}/s through the CRUD API"):
                profiles[f"CRUD API, {e2e_rates[0]}/s"] = spy(ctx, gw.pid, "e2e", duration,
                                                              lambda: inserter(e2e_rates[0], duration))
                collect(users)
    finally:
        for loader in users:
            loader.close()
        ctx.procs.stop(gw)
    data["e2e"] = e2e
    return report(ctx, data)


def _rate_rows(runs_by_rate: dict[str, list[dict[str, Any]]], cpu: bool = True, achieved: bool = False
               ) -> tuple[list[list[str]], float]:
    rows, sustained = [], 0.0
    for rate, runs in runs_by_rate.items():
        p99, missed = median_of(runs, "p99_ms"), int(median_of(runs, "missed"))
        got = statistics.median(float(r["sent"]) / max(float(r["inject_s"]), 1e-9) for r in runs)
        ok = p99 < GOAL_P99_MS and missed == 0 and got >= 0.95 * float(rate)
        sustained = max(sustained, float(rate)) if ok else sustained
        row = [f"{float(rate):,.0f}/s", *([f"{got:,.0f}/s"] if achieved else []), fmt_ms(median_of(runs, "p50_ms")),
               fmt_ms(median_of(runs, "p90_ms")), fmt_ms(p99), str(missed)]
        row += [f"{median_of(runs, 'cpu_per_insert_ms') * 1000:,.0f} µs"] if cpu else []
        rows.append([*row, "yes" if ok else "no"])
    return rows, sustained


def profile_lines(profiles: dict[str, dict[str, Any]]) -> list[str]:
    """The gateway's py-spy samples by component and by function (own time), per profiled load."""
    from bench.pocketbase import _short

    got = {k: v for k, v in profiles.items() if v.get("samples")}
    if not got:
        return []
    lines = ["Where the gateway spends its time (py-spy, 200 samples a second, on runs of their own after the "
             "measured ones; shares of all samples of its threads): "
             + ", ".join(f"{k}: {v['samples']:,} samples" for k, v in got.items()) + ".", ""]
    for key, header, limit in (("categories", "component (own time of the innermost frame)", 10),
                               ("own", "function (own time)", 12)):
        names: dict[str, float] = {}
        for prof in got.values():
            for name, share in prof[key]:
                names[name] = max(names.get(name, 0.0), share)
        keep = [n for n, v in sorted(names.items(), key=lambda kv: -kv[1]) if v >= 1.0][:limit]
        shares = {k: dict(v[key]) for k, v in got.items()}
        lines += [*md_table([header, *got], [[n if key == "categories" else _short(n),
                                              *(f"{shares[k].get(n, 0.0):.1f}%" for k in got)] for n in keep]), ""]
    return lines


def report(ctx: Context, data: dict[str, Any]) -> Section:
    per_user: dict[str, list[dict[str, Any]]] = data["per_user"]
    rows, sustained = _rate_rows(per_user)
    at = per_user.get("1000") or next(iter(per_user.values()))
    cpu_insert_ms = median_of(at, "cpu_per_insert_ms")
    growth_kib = statistics.median(data["growth_kib"]) if data["growth_kib"] else float("nan")
    one, two = data["shared"]["1"], data["shared"]["2"]
    frame_us, shared_p99 = median_of(one, "cpu_per_frame_us"), median_of(one, "p99_ms")
    best_p99 = min(shared_p99, median_of(two, "p99_ms"))
    idle_kib = float(data["idle_kib_per_socket"])
    rss = data["rss_kib"]
    e2e_rows, e2e_sustained = _rate_rows(data["e2e"], achieved=True)
    e2e_low = next(iter(data["e2e"]))
    e2e_runs = data["e2e"][e2e_low]
    goals = [
        Goal(f"{USERS:,} per-user queries: sustained inserts/s with p99 < {GOAL_P99_MS:g} ms ≥ 1,000 (inserts put "
             "into the change log: the gateway's matching and fan-out)",
             sustained >= 1000, f"{sustained:,.0f}/s put into the change log (highest rate tried: "
             f"{max(float(r) for r in per_user):,.0f}/s)"),
        Goal(f"{USERS:,} per-user queries: sustained inserts/s with p99 < {GOAL_P99_MS:g} ms ≥ 1,000, end to end "
             "through the CRUD API (SQLite, the db worker where `space-cloud run` puts it)", e2e_sustained >= 1000,
             f"{e2e_sustained:,.0f}/s (tried {', '.join(f'{float(r):,.0f}' for r in data['e2e'])}/s; at "
             f"{float(e2e_low):,.0f}/s p99 {fmt_ms(median_of(e2e_runs, 'p99_ms'))}, "
             f"{median_of(e2e_runs, 'cpu_per_insert_ms'):.1f} ms of CPU per insert, gateway and worker)"),
        Goal(f"gateway CPU per insert matching 1 of {USERS:,} queries ≤ 0.5 ms", cpu_insert_ms <= 0.5,
             f"{cpu_insert_ms * 1000:.0f} µs (at {float(at[0]['rate']):,.0f}/s)"),
        Goal(f"memory growth, {NON_MATCHING:,} non-matching inserts with {USERS:,} queries ≤ 1 MB",
             growth_kib <= 1024, f"{growth_kib:,.0f} KiB"),
        Goal(f"(issue part 4) CPU per delivered frame, one query shared by {SHARED:,} sockets ≤ 10 µs", frame_us <= 10,
             f"{frame_us:.1f} µs (two processes: {median_of(two, 'cpu_per_frame_us'):.1f} µs in all)"),
        Goal(f"(issue part 4) p99 insert → delivery, one query shared by {SHARED:,} sockets < 20 ms", best_p99 < 20,
             f"one process {fmt_ms(shared_p99)}, two processes {fmt_ms(median_of(two, 'p99_ms'))}"),
        Goal("(issue part 4) memory per idle WebSocket ≤ 16 KB", idle_kib * 1024 <= 16_000, f"{idle_kib:.1f} KiB"),
    ]
    shared_rows = [[f"{n}", fmt_ms(median_of(runs, "p50_ms")), fmt_ms(median_of(runs, "p90_ms")),
                    fmt_ms(median_of(runs, "p99_ms")), str(int(median_of(runs, "missed"))),
                    f"{median_of(runs, 'cpu_per_frame_us'):.1f} µs"] for n, runs in data["shared"].items()]
    lines = [
        f"One gateway (`space-cloud run --no-worker`, SQLite alias), {USERS:,} WebSockets in "
        f"{SUBSCRIBER_PROCS} subscriber processes, each with its own live query `where: {{userId: u<i>}}`. "
        "Change events go into the change log (the subject the db worker's relay publishes to) from an "
        "injector process at a steady rate, each a new document of a random user: every event matches "
        "exactly one of the queries. Latency is arrival at the subscriber minus the time the event was "
        "made (one clock); CPU is the user + system time of the gateway's processes over the run, divided "
        "by the events (or frames). Medians of the runs.",
        "",
        *md_table(["inserts", "p50", "p90", "p99", "missed", "gateway CPU / insert", f"p99 < {GOAL_P99_MS:g} ms"],
                  rows),
        "",
        f"Gateway RSS: {rss['start'] / 1024:,.0f} MiB at start, {rss['subscribed'] / 1024:,.0f} MiB with the "
        f"{USERS:,} sockets and queries. Growth over {NON_MATCHING:,} inserts that match none of them: "
        f"{growth_kib:,.0f} KiB (runs: {', '.join(f'{g:,.0f}' for g in data['growth_kib'])} KiB).",
        "",
        f"One query shared by {SHARED:,} sockets, {SHARED_RATE:g} events/s, each delivered to every socket, "
        "with the gateway on one process and on two (`--processes 2`: the kernel spreads the sockets over "
        "both; CPU summed over both):",
        "",
        *md_table(["gateway processes", "p50", "p90", "p99", "missed", "CPU / delivered frame"], shared_rows),
        "",
        f"End to end, the same {USERS:,} per-user queries, documents created through the CRUD API (gateway, "
        "NATS, the db worker (`space-cloud run`'s: its own process with 2+ cores), SQLite, the change log, the "
        "gateway); *inserts made*: "
        "what the inserter managed (it waits for each answer, so a saturated server slows it down); a rate "
        "counts as sustained when p99 < 50 ms, nothing is missed and at least 95% of the asked rate was made:",
        "",
        *md_table(["inserts asked", "inserts made", "p50", "p90", "p99", "missed",
                   "CPU / insert (gateway + db worker process)", f"p99 < {GOAL_P99_MS:g} ms"], e2e_rows),
        "",
        f"Memory per idle WebSocket (a fresh gateway's RSS with {IDLE:,} idle sockets, minus before): "
        f"**{idle_kib:.1f} KiB**.",
        "",
        *profile_lines(data.get("profiles") or {}),
    ]
    return Section("realtime_scale", TITLE, lines, goals, [], data=data)
