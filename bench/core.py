"""Shared machinery of `bench/run`: processes, ports, load generators, samples, medians, report sections.

A scenario module (`bench/functions.py`, `bench/meshcalls.py`, `bench/crud.py`, `bench/realtime.py`)
exposes `run(ctx: Context) -> Section`. It starts what it needs through `ctx.procs` (every process is
stopped when the run ends), measures with a load generator in its own process (wrk, or
`bench/procs/*.py`), repeats `ctx.runs` times, and returns a `Section` (markdown, goals, plots, raw
data) that `bench/report.py` writes into docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOCS = ROOT / "docs"
PROCS = BENCH / "procs"
WRK_POST = BENCH / "wrk" / "post.lua"

ECHO_BODY = b'{"params":{"msg":"hi"}}'
ECHO_ANSWER = b'{"result":{"msg":"hi"}}'
PROJECT = "bench"


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- samples and medians


@dataclass
class Sample:
    """One measured run: throughput and latency (ms) from the load generator's point of view."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    errors: int = 0
    p90_ms: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def median_sample(samples: Sequence[Sample]) -> Sample:
    """Each figure is the median of that figure over the runs (errors: the total)."""
    if not samples:
        raise ValueError("no samples")
    keys = set().union(*(s.extra for s in samples))
    return Sample(
        rps=statistics.median(s.rps for s in samples),
        p50_ms=statistics.median(s.p50_ms for s in samples),
        p99_ms=statistics.median(s.p99_ms for s in samples),
        p90_ms=statistics.median(s.p90_ms for s in samples),
        requests=int(statistics.median(s.requests for s in samples)),
        errors=sum(s.errors for s in samples),
        extra={k: statistics.median(s.extra[k] for s in samples if k in s.extra) for k in sorted(keys)},
    )


class Series:
    """Samples keyed by (system, case) where case is e.g. a concurrency; medians on demand."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], list[Sample]] = {}

    def add(self, system: str, case: str | int, sample: Sample) -> None:
        self.samples.setdefault((system, str(case)), []).append(sample)

    def median(self, system: str, case: str | int) -> Sample | None:
        got = self.samples.get((system, str(case)))
        return median_sample(got) if got else None

    def to_json(self) -> dict[str, Any]:
        return {f"{s}|{c}": [asdict(x) for x in v] for (s, c), v in self.samples.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def fmt_int(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} ms" if v < 10 else f"{v:.1f} ms"


# ---------------------------------------------------------------- report pieces


@dataclass
class Goal:
    text: str
    met: bool | None  # None: not measured
    detail: str = ""

    @property
    def verdict(self) -> str:
        return {True: "**met**", False: "**missed**", None: "not measured"}[self.met]


@dataclass
class Section:
    key: str
    title: str
    lines: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")


class Procs:
    """Processes started for the benchmark; all are stopped (by pid) when the run ends."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[Proc] = []

    def start(self, name: str, cmd: Sequence[str], *, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> Proc:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(  # each in its own session so a stop reaches only it and its children
                list(cmd), cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 8.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.running)):
            self.stop(proc)


def python_env() -> dict[str, str]:
    """Processes of this repository run from its root without an install."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT), "PYTHONUNBUFFERED": "1"}


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               procs: Sequence[Proc] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            p.check_alive()
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise BenchError(f"{what} was not ready within {timeout:g}s")


def http_post(url: str, body: bytes, *, timeout: float = 3.0, headers: dict[str, str] | None = None
              ) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 (loopback URLs we build)
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def wait_http_ok(url: str, body: bytes, *, timeout: float, what: str, procs: Sequence[Proc] = (),
                 headers: dict[str, str] | None = None) -> None:
    wait_until(lambda: http_post(url, body, headers=headers)[0] == 200, timeout=timeout, what=what, procs=procs)


# ---------------------------------------------------------------- load generators


def run_wrk(url: str, *, connections: int, duration: float, body: bytes = ECHO_BODY,
            script: Path = WRK_POST, auth: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 5.0) -> Sample:
    """wrk (C, its own process) with a lua script that prints one `BENCHJSON {...}` line.

    `timeout`: seconds after which wrk counts a request as timed out."""
    threads = 1 if connections < 4 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout",
           f"{max(1, round(timeout))}s", "-s", str(script), url]
    run_env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_AUTH": auth or "", **(env or {})}
    out = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=duration + timeout + 60,
                         check=False)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            d = json.loads(line[len("BENCHJSON "):])
            secs = d["duration_us"] / 1e6
            errors = sum(d[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
            ok = d["requests"] - d["status_errors"]
            return Sample(rps=ok / secs, p50_ms=d["p50_us"] / 1000, p90_ms=d["p90_us"] / 1000,
                          p99_ms=d["p99_us"] / 1000, requests=d["requests"], errors=errors)
    raise BenchError(f"wrk gave no result (exit {out.returncode}): {out.stdout[-1000:]} {out.stderr[-1000:]}")


def run_loadgen(script: str, args: Sequence[str], *, timeout: float) -> dict[str, Any]:
    """A Python load generator from bench/procs in its own process; it prints one JSON line last."""
    cmd = [sys.executable, str(PROCS / script), *args]
    out = subprocess.run(cmd, env={**os.environ, **python_env()}, capture_output=True, text=True,
                         timeout=timeout, check=False, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise BenchError(f"{script} failed (exit {out.returncode}): {out.stdout[-1500:]} {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def sample_from(d: dict[str, Any]) -> Sample:
    return Sample(rps=float(d["rps"]), p50_ms=float(d["p50_ms"]), p90_ms=float(d.get("p90_ms", 0.0)),
                  p99_ms=float(d["p99_ms"]), requests=int(d.get("requests", 0)), errors=int(d.get("errors", 0)),
                  extra={k: float(v) for k, v in (d.get("extra") or {}).items()})


# ---------------------------------------------------------------- the context of one run


@dataclass
class Context:
    results: Path
    runs: int
    duration: float
    warmup: float
    quick: bool
    concurrencies: list[int]
    nats_url: str
    procs: Procs
    docs: Path = DOCS
    gateway_uvloop: bool = False
    """Run the gateway on uvloop (bench/procs/gateway_uvloop.py) instead of plain `space-cloud run`."""
    gateway_one_write: bool = False
    """With gateway_uvloop: also send each response's headers and body in one socket write."""
    """Where the report and plots go: docs/, or the results folder for --quick."""
    shared: dict[str, Any] = field(default_factory=dict)
    """What one scenario measured that another reuses (e.g. the raw NATS floor)."""

    background: list[float] = field(default_factory=list)
    """CPU busy fraction of the whole machine just before each measured run (nothing of ours loaded)."""
    quiet_threshold: float = 0.15
    quiet_max_wait: float = 20.0
    quiet_budget: float = 150.0
    """Seconds the whole run may spend waiting for quiet (keeps bench/run bounded on a busy machine)."""

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def settle(self) -> None:
        """Before a measured run: wait (bounded) until the machine is idle, and record how busy it was.

        Other work on the machine (another test suite, a build) skews every figure; the report shows
        the background load measured here so a noisy run can be recognised.
        """
        start = time.monotonic()
        deadline = start + min(self.quiet_max_wait, max(0.0, self.quiet_budget))
        busy = cpu_busy(0.3)
        while busy > self.quiet_threshold and time.monotonic() < deadline:
            time.sleep(0.7)
            busy = cpu_busy(0.3)
        self.quiet_budget -= time.monotonic() - start
        if busy > self.quiet_threshold:
            self.log(f"the machine is busy ({busy:.0%} CPU) before a run: figures will be noisy")
        self.background.append(busy)


# ---------------------------------------------------------------- machine info


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields), idle


def cpu_busy(interval: float) -> float:
    """Fraction of all cores busy over `interval` seconds (0 when /proc/stat is unavailable)."""
    try:
        t0, i0 = _cpu_times()
        time.sleep(interval)
        t1, i1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 0.0 if t1 == t0 else 1 - (i1 - i0) / (t1 - t0)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cmd_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10, check=False)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def machine_info() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    from mesh.natsd import find_binary

    try:
        nats_bin = find_binary()
    except RuntimeError:
        nats_bin = "nats-server"
    versions: dict[str, str] = {}
    for mod in ("uvicorn", "uvloop", "httptools", "nats", "msgpack", "orjson"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[mod] = version({"nats": "nats-py"}.get(mod, mod))
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "node": _cmd_version(["node", "--version"]),
        "nats-server": _cmd_version([nats_bin, "--version"]),
        "wrk": _cmd_version(["wrk", "--version"]) if shutil.which("wrk") else "not found",
        "python packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
    }


@contextlib.contextmanager
def timed(ctx: Context, what: str) -> Iterator[None]:
    t0 = time.monotonic()
    ctx.log(f"{what} ...")
    yield
    ctx.log(f"{what}: {time.monotonic() - t0:.0f}s")
