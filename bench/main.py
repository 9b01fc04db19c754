"""`bench/run`: measure every part side by side in one run and write docs/benchmarks.md + docs/bench-*.png."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from bench import report
from bench.core import BENCH, DOCS, BenchError, Context, Goal, Procs, Section, machine_info

PARTS = {
    "functions": "bench.functions",
    "mesh": "bench.meshcalls",
    "crud": "bench.crud",
    "realtime": "bench.realtime",
    "pocketbase": "bench.pocketbase",
    "schemaless": "bench.schemaless",
    "realtime_scale": "bench.realtime_scale",
    "capture": "bench.capture",
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 run of 2 s per case")
    p.add_argument("--runs", type=int, help="runs of each case (default 3; --quick: 1)")
    p.add_argument("--duration", type=float, help="seconds per measured run (default 8; --quick: 2)")
    p.add_argument("--only", "--parts", dest="only",
                   help=f"comma-separated parts among {', '.join(PARTS)} (default: all); docs/benchmarks.md "
                        "keeps the sections of the parts not measured")
    p.add_argument("--concurrency", help="comma-separated client counts for parts 1-2 (default 1,16,64)")
    p.add_argument("--docs", action="store_true",
                   help="with --quick: write docs/ anyway (a quick run writes its report to bench/results/)")
    p.add_argument("--gateway-uvloop", action="store_true",
                   help="run the gateway through bench/procs/gateway_uvloop.py (space-cloud run itself is on "
                        "uvloop now; this is the base of --gateway-one-write)")
    p.add_argument("--gateway-one-write", action="store_true",
                   help="with --gateway-uvloop: headers and body of a response in one write (a server change)")
    p.add_argument("--quiet-budget", type=float, metavar="SECONDS",
                   help="how long the whole run may wait for an idle machine before its runs (default 150; "
                        "--quick: 20)")
    p.add_argument("--rewrite", metavar="RESULTS_DIR",
                   help="only rewrite docs/benchmarks.md from a finished run's bench/results/<run> (after "
                        "editing bench/profiling.md); plots are kept")
    p.add_argument("--profile", action="store_true",
                   help="instead of measuring: py-spy profile of the gateway under load (bench/profile.py)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    if a.rewrite:
        return rewrite(Path(a.rewrite))
    if a.profile:
        from bench import profile

        return profile.main([])
    runs = a.runs or (1 if a.quick else 3)
    duration = a.duration or (2.0 if a.quick else 8.0)
    warmup = 0.5 if a.quick else 1.0
    concurrencies = [int(c) for c in (a.concurrency or "1,16,64").split(",")]
    parts = [p.strip() for p in (a.only or ",".join(PARTS)).split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; known: {', '.join(PARTS)}", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("wrk is missing (bench/run installs it with apt-get)", file=sys.stderr)
        return 2

    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = BENCH / "results" / stamp
    results.mkdir(parents=True, exist_ok=True)
    (results / "home").mkdir(exist_ok=True)
    procs = Procs(results)

    from mesh.natsd import EmbeddedNats

    nats = EmbeddedNats()  # our own nats-server on a free loopback port (never 4222)
    nats_url = nats.start()
    ctx = Context(results=results, runs=runs, duration=duration, warmup=warmup, quick=a.quick,
                  concurrencies=concurrencies, nats_url=nats_url, procs=procs,
                  docs=DOCS if (a.docs or not a.quick) else results,
                  gateway_uvloop=a.gateway_uvloop or a.gateway_one_write,
                  gateway_one_write=a.gateway_one_write)
    if a.quick:
        ctx.quiet_max_wait, ctx.quiet_budget = 3.0, 20.0
    if a.quiet_budget is not None:
        ctx.quiet_budget = a.quiet_budget
    ctx.shared["nats_pid"] = nats.pid  # CPU per request counts the nats-server too (part 8)
    ctx.log(f"nats-server at {nats_url}; results in {results}")
    sections: list[Section] = []
    failed = False
    t0 = time.monotonic()
    try:
        for part in parts:
            try:
                module = importlib.import_module(PARTS[part])
            except ModuleNotFoundError as exc:
                if exc.name != PARTS[part]:
                    raise
                sections.append(Section(part, part, skipped=f"`{PARTS[part]}` is not written yet"))
                continue
            try:
                section: Section = module.run(ctx)
            except BenchError as exc:
                failed = True
                ctx.log(f"{part} failed: {exc}")
                section = Section(part, getattr(module, "TITLE", part), skipped=f"failed: {str(exc)[:300]}")
            except Exception as exc:
                failed = True
                traceback.print_exc()
                section = Section(part, getattr(module, "TITLE", part), skipped=f"crashed: {exc!r}"[:300])
            sections.append(section)
            (results / f"{part}.json").write_text(json.dumps(asdict(section), default=str, indent=1))
    finally:
        procs.stop_all()
        nats.stop()
    elapsed = time.monotonic() - t0
    ctx.log(f"measured in {elapsed:.0f}s")
    settings = {"runs per case": str(runs), "seconds per run": f"{duration:g}",
                "mode": "quick (smoke)" if a.quick else "full"}
    server = server_revision()
    if server:
        settings["server"] = server
    if ctx.gateway_uvloop:
        settings["gateway"] = ("on uvloop" + (", one write per response" if a.gateway_one_write else "")
                               + " (bench/procs/gateway_uvloop.py), not plain `space-cloud run`")
    if ctx.background:
        settings["machine CPU busy just before each run (other work)"] = (
            f"median {statistics.median(ctx.background):.0%}, max {max(ctx.background):.0%}")
    machine = machine_info()
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    (results / "run.json").write_text(json.dumps({"settings": settings, "machine": machine, "when": when,
                                                  "parts": [s.key for s in sections],
                                                  "docs": str(ctx.docs)}, indent=1))
    out = report.write(sections, machine=machine, settings=settings, out=ctx.docs / "benchmarks.md",
                       order=part_titles(), keep=ctx.docs == DOCS, when=when)
    ctx.log(f"wrote {out}")
    for s in sections:
        for g in s.goals:
            print(f"  {s.title}: {g.text}: {g.verdict.strip('*')} ({g.detail})")
        if s.skipped:
            print(f"  {s.title}: not measured: {s.skipped}")
    return 1 if failed else 0


def server_revision() -> str:
    """The server measured: BENCH_SERVER_COMMIT (a run from an exported tree of that commit), else git's HEAD."""
    given = os.environ.get("BENCH_SERVER_COMMIT", "").strip()
    if given:
        return f"commit {given}"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH.parent, capture_output=True,
                              text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench",
                                ":!docs"], cwd=BENCH.parent, capture_output=True, text=True, timeout=10,
                               check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"commit {head}" + (" with uncommitted changes" if dirty else "") if head else ""


def part_titles() -> list[str]:
    """Every part's section title, in report order."""
    titles = []
    for name in PARTS.values():
        try:
            titles.append(str(importlib.import_module(name).TITLE))
        except (ImportError, AttributeError):
            continue
    return titles


def rewrite(results: Path) -> int:
    """Rebuild the report from the JSON a finished run left in `results`."""
    run = json.loads((results / "run.json").read_text())
    sections = []
    for key in run["parts"]:
        d = json.loads((results / f"{key}.json").read_text())
        d["goals"] = [Goal(**g) for g in d.get("goals", [])]
        d["plots"] = [Path(x) for x in d.get("plots", [])]
        sections.append(Section(**d))
    docs = Path(run["docs"])
    out = report.write(sections, machine=run["machine"], settings=run["settings"], out=docs / "benchmarks.md",
                       order=part_titles(), keep=docs == DOCS, when=run.get("when"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
