"""A/B of gateway variants on the function-call path, interleaved in one run (for before/after records).

    python -m bench.ab [--variants default,uvloop,one-write] [--clients 1,16,64] [--seconds 5] [--rounds 3]

Every variant is a separate gateway process on the same nats-server and the same echo service; wrk
drives them in turn (round-robin, `--rounds` times) and the medians are printed as a markdown table
with the gateway's CPU time per request.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import stack
from bench.core import BENCH, ECHO_BODY, PROJECT, Context, Procs, Series, md_table, wait_http_ok
from bench.functions import measure_http

VARIANTS = {"default": (False, False), "uvloop": (True, False), "one-write": (True, True)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.ab")
    p.add_argument("--variants", default="default,uvloop,one-write")
    p.add_argument("--clients", default="1,16,64")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    clients = [int(c) for c in a.clients.split(",")]
    results = BENCH / "results" / time.strftime("ab-%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    (results / "home").mkdir()
    from mesh.natsd import EmbeddedNats

    nats = EmbeddedNats()
    procs = Procs(results)
    ctx = Context(results=results, runs=a.rounds, duration=a.seconds, warmup=1.0, quick=False,
                  concurrencies=clients, nats_url=nats.start(), procs=procs)
    series = Series()
    try:
        svc = stack.echo_service(ctx)
        gateways = {}
        for v in variants:
            ctx.gateway_uvloop, ctx.gateway_one_write = VARIANTS[v]
            gw, base = stack.start_gateway(ctx, f"gateway-{v}",
                                           stack.gateway_config({"functions": stack.FUNCTIONS_MODULE}))
            url = f"{base}/v1/api/{PROJECT}/functions/bench/echo"
            wait_http_ok(url, ECHO_BODY, timeout=30, what=f"gateway {v}", procs=[gw, svc])
            measure_http(url, 16, 2.0, gw.pid)  # warm-up
            gateways[v] = (gw.pid, url)
        for r in range(a.rounds):
            for c in clients:
                for v in variants:
                    ctx.settle()
                    pid, url = gateways[v]
                    series.add(v, c, measure_http(url, c, a.seconds, pid))
            ctx.log(f"round {r + 1}/{a.rounds} done")
    finally:
        procs.stop_all()
        nats.stop()
    rows = []
    for c in clients:
        for v in variants:
            m = series.median(v, c)
            assert m is not None
            rows.append([str(c), v, f"{m.rps:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}",
                         f"{m.extra.get('gateway_cpu_us_per_req', 0):.0f}"])
    busy = sorted(ctx.background)
    print("\n".join(md_table(["clients", "variant", "req/s", "p50 ms", "p99 ms", "gateway CPU µs/req"], rows)))
    print(f"\n{a.rounds} rounds x {a.seconds:g}s, medians; machine busy before runs: "
          f"median {busy[len(busy) // 2]:.0%}, max {busy[-1]:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
