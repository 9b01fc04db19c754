"""deploy/: the compose file uses only commands and flags that exist, everything it mounts or copies is
there; and the same topology, run on loopback from the same commands (3 clustered nats-servers, 2
gateways, 2 workers, 2 service instances), keeps serving while one of each is killed in turn under
load, with every failure counted and explained."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import cli
from gateway.config import load
from mesh.natsd import find_binary
from sdk.mesh import run_arguments
from tests.ops.topology import COMPOSE, DEPLOY, ROOT, Topology, argv_of, load_compose, replicas, with_defaults
from tests.support.databases import database_url

PROJECT = "todo-app"


def test_the_compose_file_uses_what_exists() -> None:
    compose = load_compose()
    services: dict[str, dict[str, Any]] = compose["services"]
    ours = {name: svc for name, svc in services.items() if "build" in svc}
    assert set(ours) == {"gateway", "worker", "todo-service"}
    assert {n: replicas(ours[n]) for n in ours} == {"gateway": 2, "worker": 2, "todo-service": 2}
    nats = [name for name, svc in services.items() if str(svc.get("image", "")).startswith("nats")]
    assert len(nats) == 3

    for name, svc in ours.items():
        argv = argv_of(svc)
        try:
            if argv[0] == "space-cloud":
                cli._parser().parse_args(argv[1:])
            else:
                assert argv[:3] == ["python", "-m", "examples.todo.service"], argv
                run_arguments().parse_args(argv[3:])
        except SystemExit:
            pytest.fail(f"{name}: `{' '.join(argv)}` is not a valid command line (see the error above)")
    help_text = subprocess.run([find_binary(), "--help"], capture_output=True, text=True).stdout
    for name in nats:
        for flag in (a for a in argv_of(services[name]) if a.startswith("-")):
            pattern = rf"(^|[\s,]){re.escape(flag)}[\s,=]"
            assert re.search(pattern, help_text, re.M), f"{name}: nats-server has no {flag}"

    for name, svc in services.items():
        assert "healthcheck" in svc or name == "prometheus", f"{name} has no health check"
        for dep in svc.get("depends_on") or []:
            assert dep in services, f"{name} depends on unknown {dep}"
        for volume in svc.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), f"{name} mounts {source}, which deploy/ lacks"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared volume {source}"
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is missing"

    env = {k: with_defaults(str(v)) for k, v in ours["gateway"]["environment"].items()}
    config = load(DEPLOY / "config.yaml", env=env)
    assert config.projects[PROJECT].crud["db"].type == "postgres"
    assert Path(config.projects[PROJECT].static[0].path) == ROOT / "examples" / "todo" / "public"
    if shutil.which("promtool"):
        subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus.yml")], check=True,
                       capture_output=True)
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "-q"], check=True)


# -- the topology under faults ----------------------------------------------------------------------


@dataclass
class Load:
    gateways: list[str]
    token: str
    user: str
    phase: str = "start"
    results: dict[str, Counter[str]] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    stop: bool = False

    def record(self, outcome: str) -> None:
        self.results.setdefault(self.phase, Counter())[outcome] += 1

    def pick(self, n: int) -> str:
        """Round robin over the gateways a load balancer still sends to: one that refused a connection
        is left out until its health check (`balancer`) answers 200 again."""
        up = [g for g in self.gateways if g not in self.down] or self.gateways
        return up[n % len(up)]

    async def balancer(self) -> None:
        """What a load balancer does: probe the gateways left out, take them back once healthy."""
        async with httpx.AsyncClient(timeout=2) as http:
            while not self.stop:
                for g in list(self.down):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"{g}/v1/api/health")).status_code == 200:
                            self.down.discard(g)
                await asyncio.sleep(0.5)

    async def client(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=20, headers=headers) as http:
            i = n
            while not self.stop:
                i += 1
                base = self.pick(i)
                op = ("create", "read", "call")[i % 3]
                try:
                    if op == "create":
                        r = await http.post(f"{base}/v1/api/{PROJECT}/crud/db/todos/create", json={
                            "op": "one", "doc": {"id": uuid.uuid4().hex, "userId": self.user, "text": "t",
                                                 "done": False}})
                    elif op == "read":
                        r = await http.post(f"{base}/v1/api/{PROJECT}/crud/db/todos/read", json={
                            "op": "all", "find": {"userId": self.user}, "options": {"limit": 20}})
                    else:
                        r = await http.post(f"{base}/v1/api/{PROJECT}/functions/todo/summary", json={
                            "params": {"todos": []}, "timeout": 3000})
                except httpx.TransportError as exc:
                    self.down.add(base)
                    self.record(f"{op}: gateway unreachable ({type(exc).__name__})")
                    await asyncio.sleep(0.05)
                    continue
                if r.status_code == 200:
                    self.record("ok")
                else:
                    error = str(r.json().get("error", r.text))[:140] if r.content else ""
                    self.record(f"{op}: {r.status_code} {error}")
                await asyncio.sleep(0.01)


def _explain(load: Load) -> str:
    lines = []
    for phase, counts in load.results.items():
        ok = counts.get("ok", 0)
        failed = sum(counts.values()) - ok
        lines.append(f"{phase}: {ok} ok, {failed} failed")
        lines += [f"    {n:5d}  {why}" for why, n in counts.most_common() if why != "ok"]
    return "\n".join(lines)


@pytest.mark.slow
@pytest.mark.postgres
async def test_the_topology_keeps_serving_while_one_of_each_is_killed(tmp_path: Path) -> None:
    db_url = await database_url("postgres-deploy")
    topo = Topology(tmp_path, db_url)
    try:
        for name in topo.nats_ports:
            topo.start(name)
        for _client, _cluster, monitor in topo.nats_ports.values():
            await asyncio.to_thread(topo.wait_http, f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true")
        for index in (1, 2):
            topo.start("worker", index)
            topo.start("todo-service", index)
            topo.start("gateway", index)
        gateways = [f"http://127.0.0.1:{p}" for p in topo.gateway_ports]

        def ready(body: dict[str, Any]) -> bool:
            services = {s["name"]: s["instances"] for s in body.get("services", [])}
            return bool(body.get("workers") == 2 and services.get("todo") == 2 and body.get("status") == "serving")

        for url in gateways:
            await asyncio.to_thread(topo.wait_http, f"{url}/v1/api/health", timeout=90, check=ready)
        for port in topo.worker_ports:
            await asyncio.to_thread(topo.wait_http, f"http://127.0.0.1:{port}/healthz")

        email = f"ops-{uuid.uuid4().hex[:10]}@example.com"
        async with httpx.AsyncClient(timeout=20) as http:
            r = await http.post(f"{gateways[0]}/v1/api/{PROJECT}/auth/db/email/signup",
                                json={"email": email, "pass": "a long password 123", "name": "Ops"})
            assert r.status_code == 200, r.text
            body = r.json()
        load = Load(gateways, body["token"], body["user"]["id"])
        clients = [asyncio.create_task(load.client(n)) for n in range(6)]
        clients.append(asyncio.create_task(load.balancer()))

        async def phase(name: str, seconds: float) -> None:
            load.phase = name
            await asyncio.sleep(seconds)

        await phase("steady", 3)
        topo.procs["nats2"].kill()
        await phase("a nats-server killed", 6)
        topo.procs["worker1"].kill()
        await phase("a db worker killed", 14)  # requests it held answer 504 at the gateway's dbTimeout (10 s)
        topo.procs["todo-service1"].kill()
        await phase("a service instance killed", 6)  # calls it held answer 504 at their timeout (3 s)
        topo.procs["gateway1"].kill()
        await phase("a gateway killed", 6)
        await phase("after", 5)
        load.stop = True
        await asyncio.gather(*clients)
        beat = tmp_path / "todo-service-2.ok"  # --health-file: what the container's health check reads
        assert beat.exists() and time.time() - beat.stat().st_mtime < 15
    finally:
        topo.stop_all()
    report = _explain(load)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "deploy-faults.json").write_text(json.dumps(load.results, indent=2))
    print(report)

    allowed = re.compile(r"^(create|read|call): (gateway unreachable|503 |504 )")
    for phase_name, counts in load.results.items():
        assert counts.get("ok", 0) > 0, f"nothing succeeded during {phase_name!r}:\n{report}"
        wrong = [why for why in counts if why != "ok" and not allowed.match(why)]
        assert not wrong, f"failures that are not a lost part's 503/504/refused connection:\n{report}"
    for quiet in ("steady", "after"):
        failed = sum(n for why, n in load.results[quiet].items() if why != "ok")
        assert failed == 0, f"failures while nothing was failing ({quiet}):\n{report}\n{topo.logs()}"
