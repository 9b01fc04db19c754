"""Part 2: service-to-service calls, `sdk.Mesh.call()` → an `sdk.Mesh` service vs raw nats-py request-reply.

Both driven by bench/procs/nats_load.py in its own process (one NATS connection, N concurrent callers).
The overhead ratio is raw throughput / mesh throughput (at 1 client: the latency ratio). Goal: ≤ 1.2x.
"""

from __future__ import annotations

from bench import stack
from bench.core import (
    Context,
    Goal,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    md_table,
    ratio,
    run_loadgen,
    sample_from,
    timed,
)
from bench.functions import RAW, raw_floor

TITLE = "2. Service-to-service calls (mesh.call vs raw NATS)"

MESH = "mesh.call"
GOAL = 1.2


def run(ctx: Context) -> Section:
    stack.echo_service(ctx)
    reuse: Series | None = ctx.shared.get("raw_series")
    series = Series()
    for rep in range(ctx.runs):
        for conc in ctx.concurrencies:
            with timed(ctx, f"mesh.call: run {rep + 1}/{ctx.runs}, {conc} clients"):
                ctx.settle()
                d = run_loadgen("nats_load.py", ["--nats", ctx.nats_url, "--mode", "mesh", "--project", "bench",
                                                 "--concurrency", str(conc), "--duration", str(ctx.duration),
                                                 "--warmup", str(ctx.warmup)],
                                timeout=ctx.duration + ctx.warmup + 60)
                series.add(MESH, conc, sample_from(d))
                if reuse is None:
                    ctx.settle()
                    series.add(RAW, conc, sample_from(raw_floor(ctx, conc, ctx.duration)))
    if reuse is not None:
        series.samples.update({k: v for k, v in reuse.samples.items() if k[0] == RAW})

    rows = []
    worst = 0.0
    for conc in ctx.concurrencies:
        mesh, raw = series.median(MESH, conc), series.median(RAW, conc)
        assert mesh is not None and raw is not None
        over = ratio(raw.rps, mesh.rps)
        worst = max(worst, over or 0.0)
        rows.append([str(conc), fmt_int(mesh.rps), fmt_int(raw.rps), fmt_ratio(over),
                     f"{fmt_ms(mesh.p50_ms)} / {fmt_ms(raw.p50_ms)}", fmt_ratio(ratio(mesh.p50_ms, raw.p50_ms)),
                     f"{fmt_ms(mesh.p99_ms)} / {fmt_ms(raw.p99_ms)}", str(mesh.errors + raw.errors)])
    goals = [Goal(f"mesh.call overhead within {GOAL}x of raw nats-py at every concurrency", worst <= GOAL,
                  f"worst throughput ratio {worst:.2f}x")]
    lines = [
        "`mesh.call(\"bench\", \"echo\", {\"msg\": \"hi\"})` (msgpack envelope, one reply inbox, the service "
        "runtime on `nats.micro` with a task per call) vs `nc.request()` on a bare nats-py subscription "
        "echoing the bytes. Overhead = raw req/s ÷ mesh req/s.",
        "",
        *md_table(["clients", "mesh.call req/s", "raw req/s", "overhead", "p50 mesh / raw", "p50 ratio",
                   "p99 mesh / raw", "errors"], rows),
    ]
    from bench.report import bar_plot

    plot = bar_plot(ctx.docs, "bench-mesh.png", "Service-to-service call: mesh.call vs raw nats-py", [MESH, RAW],
                    ctx.concurrencies, series, case_label="concurrent callers")
    return Section("mesh", TITLE, lines, goals, [plot],
                   data={"series": series.to_json()})
