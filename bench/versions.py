"""A/B of two revisions of the server on its hot paths, interleaved in one run (a "no regression" check).

    python -m bench.versions --base <rev> [--head <rev>] [--clients 16,64] [--seconds 5] [--rounds 3]

Each revision runs from its own git worktree, as its own stack on its own nats-server: `space-cloud run
--nats URL` (gateway + in-process db worker) on SQLite, and the `bench` echo service of that revision.
wrk drives, in turn and `--rounds` times: a function call, a read by id and an insert. Medians per
revision and the head/base ratio are printed as a markdown table; revisions share the machine and
the minute, so noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.core import BENCH, ECHO_BODY, ROOT, BenchError, Sample, free_port, md_table, run_wrk, wait_http_ok
from bench.functions import measure_http

TEMPLATED = BENCH / "wrk" / "templated.lua"
ROWS = 1000
OPS = ("call", "read by id", "insert")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def _config(home: Path) -> Path:
    allow = {"rule": "allow"}
    cfg = {"projects": [{"id": "bench", "secret": "bench-secret-0123456789-0123456789-abcdef", "modules": {
        "crud": {"sqlite": {"type": "sqlite", "conn": str(home / "bench.db"), "collections": {
            "items": {"isRealtimeEnabled": True, "rules": {op: allow for op in
                                                           ("create", "read", "update", "delete")}}}}},
        "functions": {"enabled": True, "services": {"default": {"functions": {"default": {"rule": allow}}}}}}}]}
    path = home / "config.json"
    path.write_text(json.dumps(cfg))
    return path


class Stack:
    """One revision's nats-server, gateway (+ worker) and echo service."""

    def __init__(self, name: str, rev: str, results: Path) -> None:
        self.name, self.rev = name, rev
        self.tree = results / f"tree-{name}"
        self.home = results / f"home-{name}"
        self.home.mkdir(parents=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = results

    def _spawn(self, label: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(self.tree), "SPACE_CLOUD_HOME": str(self.home)}
        log = (self.logs / f"{self.name}-{label}.log").open("wb")
        proc = subprocess.Popen(cmd, cwd=self.tree, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        _git("worktree", "add", "--detach", str(self.tree), self.rev)
        from mesh.natsd import find_binary

        nats_port, self.port = free_port(), free_port()
        nats_url = f"nats://127.0.0.1:{nats_port}"
        self._spawn("nats", [find_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd",
                             str(self.home / "js")])
        time.sleep(0.5)
        self.gateway = self._spawn("gateway", [sys.executable, "-m", "gateway.cli", "run", "--config",
                                               str(_config(self.home)), "--port", str(self.port), "--host",
                                               "127.0.0.1", "--nats", nats_url, "--log-level", "warning"])
        self._spawn("service", [sys.executable, "bench/procs/echo_service.py", "--nats", nats_url,
                                "--project", "bench"])
        base = f"http://127.0.0.1:{self.port}/v1/api/bench"
        self.call_url = f"{base}/functions/bench/echo"
        self.crud = f"{base}/crud/sqlite/items"
        wait_http_ok(self.call_url, ECHO_BODY, timeout=60, what=f"{self.name} gateway")
        for i in range(ROWS):  # seed through the API itself
            body = json.dumps({"op": "one", "doc": {"id": f"i{i}", "grp": i % 50, "text": "x" * 40}}).encode()
            wait_http_ok(self.crud + "/create", body, timeout=10, what="seeding")

    def measure(self, op: str, conns: int, seconds: float) -> Sample:
        if op == "call":
            return measure_http(self.call_url, conns, seconds, self.gateway.pid)
        if op == "read by id":
            env = {"BENCH_TEMPLATE": '{"op":"one","find":{"id":"{ID}"}}', "BENCH_PATH": "/v1/api/bench/crud/"
                   "sqlite/items/read", "BENCH_ROWS": str(ROWS)}
        else:
            env = {"BENCH_TEMPLATE": '{"op":"one","doc":{"id":"{NEW}","grp":1,"text":"new"}}',
                   "BENCH_PATH": "/v1/api/bench/crud/sqlite/items/create", "BENCH_RUN": f"{time.time_ns()}"}
        return run_wrk(f"http://127.0.0.1:{self.port}{env['BENCH_PATH']}", connections=conns, duration=seconds,
                       script=TEMPLATED, env=env)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["git", "worktree", "remove", "--force", str(self.tree)], cwd=ROOT, check=False,
                       capture_output=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.versions")
    p.add_argument("--base", required=True, help="the revision to compare against (e.g. the last release)")
    p.add_argument("--head", default="HEAD")
    p.add_argument("--clients", default="16,64")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args(argv)
    clients = [int(c) for c in a.clients.split(",") if c]
    results = BENCH / "results" / time.strftime("versions-%Y%m%d-%H%M%S")
    results.mkdir(parents=True)
    stacks = [Stack("base", _git("rev-parse", a.base), results), Stack("head", _git("rev-parse", a.head), results)]
    samples: dict[tuple[str, str, int], list[Sample]] = {}
    try:
        for s in stacks:
            s.start()
        for s in stacks:  # warm-up
            for op in OPS:
                s.measure(op, 16, 1.0)
        for r in range(a.rounds):
            for op in OPS:
                for c in clients:
                    for s in stacks if r % 2 == 0 else reversed(stacks):
                        samples.setdefault((s.name, op, c), []).append(s.measure(op, c, a.seconds))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"bench.versions: {exc}", file=sys.stderr)
        return 1
    finally:
        for s in stacks:
            s.stop()
        shutil.rmtree(results / "home-base", ignore_errors=True)
        shutil.rmtree(results / "home-head", ignore_errors=True)

    def median(name: str, op: str, c: int, attr: str) -> float:
        values = sorted(float(getattr(x, attr)) for x in samples[(name, op, c)])
        return values[len(values) // 2]

    rows = []
    for op in OPS:
        for c in clients:
            base, head = median("base", op, c, "rps"), median("head", op, c, "rps")
            rows.append([op, str(c), f"{base:,.0f}", f"{head:,.0f}", f"{head / base:.2f}x" if base else "-",
                         f"{median('base', op, c, 'p99_ms'):.1f} / {median('head', op, c, 'p99_ms'):.1f}"])
    print(f"base {stacks[0].rev[:10]}, head {stacks[1].rev[:10]}; medians of {a.rounds} x {a.seconds:g} s")
    print("\n".join(md_table(["operation", "clients", "base req/s", "head req/s", "head/base", "p99 ms base / head"],
                            rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
