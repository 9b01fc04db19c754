"""Part 1: a function call through the gateway (HTTP → NATS → service → back, a small JSON echo).

Systems, all over the same nats-server, measured interleaved in one run:
- space-cloud: `space-cloud run --no-worker` + an `sdk.Mesh` echo service, driven by wrk;
- moleculer: moleculer-web + a Moleculer service on the NATS transporter, driven by wrk;
- raw nats-py: `nc.request()` against a bare responder, driven by bench/procs/nats_load.py (the floor).
Goal: at least Moleculer's throughput and no worse p99, at every concurrency.
"""

from __future__ import annotations

from bench import stack
from bench.core import (
    Context,
    Goal,
    Sample,
    Section,
    Series,
    fmt_int,
    fmt_ms,
    fmt_ratio,
    md_table,
    proc_cpu_seconds,
    ratio,
    run_loadgen,
    run_wrk,
    sample_from,
    timed,
)

TITLE = "1. Function calls through the gateway"

SC = "space-cloud"
MOL = "moleculer"
RAW = "raw nats-py"
SYSTEMS = [SC, MOL, RAW]


def raw_floor(ctx: Context, concurrency: int, duration: float) -> dict[str, object]:
    stack.raw_responder(ctx)
    return run_loadgen("nats_load.py", ["--nats", ctx.nats_url, "--mode", "raw", "--concurrency", str(concurrency),
                                        "--duration", str(duration), "--warmup", str(ctx.warmup)],
                       timeout=duration + ctx.warmup + 60)


def measure_http(url: str, conc: int, duration: float, gateway_pid: int) -> Sample:
    """wrk against a gateway, also recording the gateway's CPU time per request (µs)."""
    cpu0 = proc_cpu_seconds(gateway_pid)
    sample = run_wrk(url, connections=conc, duration=duration)
    cpu = proc_cpu_seconds(gateway_pid) - cpu0
    if sample.requests:
        sample.extra["gateway_cpu_us_per_req"] = 1e6 * cpu / sample.requests
    return sample


def run(ctx: Context) -> Section:
    gw, sc_url = stack.functions_gateway(ctx)
    gw_pid = gw.pid
    mol_url = stack.moleculer(ctx)
    mol_pid = ctx.shared["moleculer_gateway"].pid
    stack.raw_responder(ctx)
    series = Series()
    with timed(ctx, "functions: warm-up"):
        for url in (sc_url, mol_url):
            run_wrk(url, connections=16, duration=max(1.0, ctx.warmup * 2))
    for rep in range(ctx.runs):
        for conc in ctx.concurrencies:
            with timed(ctx, f"functions: run {rep + 1}/{ctx.runs}, {conc} clients"):
                ctx.settle()
                series.add(SC, conc, measure_http(sc_url, conc, ctx.duration, gw_pid))
                ctx.settle()
                series.add(MOL, conc, measure_http(mol_url, conc, ctx.duration, mol_pid))
                ctx.settle()
                series.add(RAW, conc, sample_from(raw_floor(ctx, conc, ctx.duration)))
    ctx.shared["raw_series"] = series  # part 2 reuses the floor measured here

    rows = []
    goals = []
    for conc in ctx.concurrencies:
        sc, mol, raw = (series.median(s, conc) for s in SYSTEMS)
        assert sc is not None and mol is not None and raw is not None
        for name, m in ((SC, sc), (MOL, mol), (RAW, raw)):
            cpu = m.extra.get("gateway_cpu_us_per_req")
            rows.append([str(conc), name, fmt_int(m.rps), fmt_ms(m.p50_ms), fmt_ms(m.p99_ms), str(m.errors),
                         fmt_ratio(ratio(m.rps, mol.rps)), fmt_ratio(ratio(m.rps, raw.rps)),
                         "-" if cpu is None else f"{cpu:.0f} µs"])
        tput_ok = sc.rps >= mol.rps
        p99_ok = sc.p99_ms <= mol.p99_ms
        goals.append(Goal(
            f"{conc} client{'s' if conc > 1 else ''}: throughput ≥ Moleculer and p99 ≤ Moleculer",
            tput_ok and p99_ok,
            f"{fmt_int(sc.rps)} vs {fmt_int(mol.rps)} req/s ({fmt_ratio(ratio(sc.rps, mol.rps))}); "
            f"p99 {fmt_ms(sc.p99_ms)} vs {fmt_ms(mol.p99_ms)}",
        ))
    lines = [
        "A POST of `{\"params\":{\"msg\":\"hi\"}}` answered with `{\"result\":{\"msg\":\"hi\"}}`. "
        "HTTP systems are driven by wrk (closed loop, one connection per client); the raw floor by "
        "`bench/procs/nats_load.py` (N concurrent `nc.request()` callers in their own process). Gateway CPU / "
        "req: CPU time the gateway process used during the run divided by the requests it answered.",
        "",
        *md_table(["clients", "system", "req/s", "p50", "p99", "errors", "vs Moleculer", "vs raw NATS",
                   "gateway CPU / req"], rows),
    ]
    from bench.report import bar_plot

    plot = bar_plot(ctx.docs, "bench-functions.png", "Function call through the gateway (echo)", SYSTEMS,
                    ctx.concurrencies, series, case_label="concurrent clients")
    return Section("functions", TITLE, lines, goals, [plot],
                   data={"series": series.to_json()})
