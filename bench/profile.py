"""Profile the function-call path under load: py-spy samples the gateway (or the echo service) while wrk
drives it; prints the functions with the most own time and the biggest subtrees, and writes a flame graph
(SVG) and the raw stacks to bench/results/.

    bench/run --profile                      # the gateway, 64 clients, 10 s
    python -m bench.profile --target service --clients 16 --seconds 8
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import stack
from bench.core import BENCH, Context, Procs, Sample, python_env, run_wrk, sample_from


def summarize(raw: Path, top: int = 30) -> str:
    """py-spy raw (collapsed) stacks → own-time and total-time tables (percent of samples)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    n = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        n += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not n:
        return "no samples"
    out = [f"{n} samples", "", "own time:"]
    out += [f"  {100 * c / n:5.1f}%  {f}" for f, c in own.most_common(top)]
    out += ["", "total time (with callees):"]
    out += [f"  {100 * c / n:5.1f}%  {f}" for f, c in total.most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.profile")
    p.add_argument("--target", choices=["gateway", "service", "mesh-caller"], default="gateway")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--uvloop", action="store_true", help="the gateway on uvloop (bench/procs/gateway_uvloop.py)")
    p.add_argument("--one-write", action="store_true", help="with --uvloop: one socket write per response")
    a = p.parse_args(argv)
    if shutil.which("py-spy") is None:
        print("py-spy is missing: pip install py-spy", file=sys.stderr)
        return 2
    results = BENCH / "results" / time.strftime("profile-%Y%m%d-%H%M%S")
    results.mkdir(parents=True, exist_ok=True)
    (results / "home").mkdir()
    from mesh.natsd import EmbeddedNats

    nats = EmbeddedNats()
    procs = Procs(results)
    ctx = Context(results=results, runs=1, duration=a.seconds, warmup=1.0, quick=False,
                  concurrencies=[a.clients], nats_url=nats.start(), procs=procs, gateway_uvloop=a.uvloop or a.one_write,
                  gateway_one_write=a.one_write)
    try:
        gw, url = stack.functions_gateway(ctx)
        svc = stack.echo_service(ctx)
        run_wrk(url, connections=a.clients, duration=2)  # warm-up
        target_pid = {"gateway": gw.pid, "service": svc.pid}.get(a.target)
        raw = results / f"{a.target}.raw.txt"
        svg = results / f"{a.target}.svg"
        sample: Sample
        if a.target == "mesh-caller":
            # the caller is the load generator itself: profile it through py-spy's launcher
            cmd = ["py-spy", "record", "--nonblocking", "--rate", str(a.rate), "--format", "raw", "-o", str(raw),
                   "--", sys.executable, str(BENCH / "procs" / "nats_load.py"), "--nats", ctx.nats_url, "--mode",
                   "mesh", "--concurrency", str(a.clients), "--duration", str(a.seconds)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=a.seconds + 60,
                                 env={**os.environ, **python_env()})
            print(out.stdout[-500:])
            sample = sample_from(json.loads(out.stdout.strip().splitlines()[-1]))
        else:
            spy = ["py-spy", "record", "--nonblocking", "--rate", str(a.rate), "--pid", str(target_pid),
                   "--duration", str(int(a.seconds))]
            rec_raw = subprocess.Popen([*spy, "--format", "raw", "-o", str(raw)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            sample = run_wrk(url, connections=a.clients, duration=a.seconds)
            rec_raw.wait(timeout=60)
            rec_svg = subprocess.Popen([*spy, "--format", "flamegraph", "-o", str(svg)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            run_wrk(url, connections=a.clients, duration=a.seconds)
            rec_svg.wait(timeout=60)
        summary = summarize(raw)
        text = (f"target {a.target}, {a.clients} clients, {a.seconds:g}s: {sample.rps:,.0f} req/s, "
                f"p50 {sample.p50_ms:.2f} ms, p99 {sample.p99_ms:.2f} ms (under the profiler)\n\n{summary}\n")
        (results / f"{a.target}.summary.txt").write_text(text)
        print(text)
        print(f"flame graph and raw stacks in {results}")
    finally:
        procs.stop_all()
        nats.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
