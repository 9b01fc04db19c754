"""The systems under test, each started once per `bench/run` as separate processes (as in production).

Memoised in `ctx.shared`, so scenarios that need the same process share it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.core import (
    BENCH,
    ECHO_BODY,
    PROCS,
    PROJECT,
    BenchError,
    Context,
    Proc,
    free_port,
    python_env,
    wait_http_ok,
    wait_until,
)

SECRET = "bench-secret-0123456789-0123456789-abcdef"  # noqa: S105 (a throwaway project on loopback)

FUNCTIONS_MODULE: dict[str, Any] = {
    "enabled": True,
    "services": {"bench": {"functions": {"echo": {"rule": {"rule": "allow"}}}}},
}


def gateway_config(modules: dict[str, Any]) -> dict[str, Any]:
    return {"projects": [{"id": PROJECT, "secret": SECRET, "modules": modules}]}


def space_cloud(ctx: Context, *args: str) -> list[str]:
    """The `space-cloud ...` command line (through bench/procs/gateway_uvloop.py for the uvloop variants)."""
    launcher = [str(PROCS / "gateway_uvloop.py")] if ctx.gateway_uvloop else ["-m", "gateway.cli"]
    return [sys.executable, *launcher, *args]


def start_worker(ctx: Context, name: str, config_file: Path) -> Proc:
    """`space-cloud worker --nats URL --config <file>` (a db worker in its own process)."""
    return ctx.procs.start(name, space_cloud(ctx, "worker", "--nats", ctx.nats_url, "--config", str(config_file),
                                             "--log-level", "warning"), env=python_env())


def start_gateway(ctx: Context, name: str, config: dict[str, Any], *, worker: bool = False) -> tuple[Proc, str]:
    """`space-cloud run --nats URL --no-worker --config <file>` on a free loopback port → (process, base URL)."""
    cfg = ctx.results / f"{name}.config.json"
    cfg.write_text(json.dumps(config, indent=2))
    port = free_port()
    cmd = space_cloud(ctx, "run", "--nats", ctx.nats_url, "--config", str(cfg),
                      "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning")
    if not worker:
        cmd.insert(cmd.index("--config"), "--no-worker")
    env = {**python_env(), "SPACE_CLOUD_HOME": str(ctx.results / "home"),
           "BENCH_ONE_WRITE": "1" if ctx.gateway_one_write else "0"}
    proc = ctx.procs.start(name, cmd, env=env)
    base = f"http://127.0.0.1:{port}"
    return proc, base


def echo_service(ctx: Context) -> Proc:
    """The `sdk.Mesh` echo service (service `bench`, function `echo`)."""
    if "echo_service" not in ctx.shared:
        ctx.shared["echo_service"] = ctx.procs.start(
            "echo-service",
            [sys.executable, str(PROCS / "echo_service.py"), "--nats", ctx.nats_url, "--project", PROJECT],
            env=python_env(),
        )
    proc: Proc = ctx.shared["echo_service"]
    return proc


def raw_responder(ctx: Context) -> Proc:
    if "raw_responder" not in ctx.shared:
        proc = ctx.procs.start("raw-responder",
                               [sys.executable, str(PROCS / "raw_responder.py"), "--nats", ctx.nats_url],
                               env=python_env())
        wait_until(lambda: "ready" in proc.log.read_text(), timeout=20, what="raw responder", procs=[proc])
        ctx.shared["raw_responder"] = proc
    out: Proc = ctx.shared["raw_responder"]
    return out


def functions_gateway(ctx: Context) -> tuple[Proc, str]:
    """The Space Cloud gateway serving the echo function; returns (gateway process, function URL)."""
    if "functions_gateway" not in ctx.shared:
        svc = echo_service(ctx)
        gw, base = start_gateway(ctx, "gateway", gateway_config({"functions": FUNCTIONS_MODULE}))
        url = f"{base}/v1/api/{PROJECT}/functions/bench/echo"
        wait_http_ok(url, ECHO_BODY, timeout=30, what="space-cloud gateway + echo service", procs=[gw, svc])
        ctx.shared["functions_gateway"] = (gw, url)
    got: tuple[Proc, str] = ctx.shared["functions_gateway"]
    return got


MOLECULER = BENCH / "moleculer"


def moleculer(ctx: Context) -> str:
    """moleculer-web gateway + a Moleculer echo service over the same nats-server; returns the echo URL."""
    if "moleculer" not in ctx.shared:
        if not (MOLECULER / "node_modules" / "moleculer").is_dir():
            raise BenchError("bench/moleculer/node_modules is missing: run bench/run (it runs npm ci there)")
        port = free_port()
        env = {"NATS_URL": ctx.nats_url, "PORT": str(port)}
        svc = ctx.procs.start("moleculer-service", ["node", "service.js"], env=env, cwd=MOLECULER)
        gw = ctx.procs.start("moleculer-gateway", ["node", "gateway.js"], env=env, cwd=MOLECULER)
        url = f"http://127.0.0.1:{port}/api/bench/echo"
        wait_http_ok(url, ECHO_BODY, timeout=30, what="moleculer gateway + service", procs=[gw, svc])
        ctx.shared["moleculer"] = url
        ctx.shared["moleculer_gateway"] = gw
    return str(ctx.shared["moleculer"])


def proc_rss_kib(pid: int) -> int:
    """Resident memory of a process (KiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
