"""deploy/docker-compose.yml run on loopback, from the same commands: each container of our image (and
each nats-server) becomes a local process, with what only a container gives translated: host names
and fixed ports become 127.0.0.1 and free ports, in-image paths become repository paths, and every
listener binds to 127.0.0.1. PostgreSQL is the local test server instead of the `postgres` service."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from mesh.natsd import find_binary
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
OUR_IMAGE_ENTRYPOINT = ["space-cloud"]
"""deploy/Dockerfile's ENTRYPOINT."""

_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def with_defaults(value: str) -> str:
    """Compose's `${NAME:-default}` with the environment of a fresh machine: the default."""
    return _VAR.sub(lambda m: m.group(2) or "", value)


def argv_of(service: dict[str, Any]) -> list[str]:
    entry = service.get("entrypoint") or (OUR_IMAGE_ENTRYPOINT if "build" in service else [])
    return [str(a) for a in [*entry, *(service.get("command") or [])]]


def replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


@dataclass
class Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)


@dataclass
class Topology:
    tmp: Path
    db_url: str
    compose: dict[str, Any] = field(default_factory=load_compose)
    procs: dict[str, Process] = field(default_factory=dict)
    nats_ports: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """nats1 -> (client, cluster, monitoring)."""
    gateway_ports: list[int] = field(default_factory=list)
    worker_ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name, svc in self.compose["services"].items():
            if str(svc.get("image", "")).startswith("nats"):
                self.nats_ports[name] = (free_port(), free_port(), free_port())

    # -- commands ---------------------------------------------------------------------------------

    def _hosts(self, token: str) -> str:
        for name, (client, cluster, _) in self.nats_ports.items():
            token = token.replace(f"{name}:4222", f"127.0.0.1:{client}").replace(f"{name}:6222", f"127.0.0.1:{cluster}")
        return token.replace("/app/deploy/", f"{DEPLOY}/").replace("/etc/nats/", f"{DEPLOY}/")

    def _env(self, svc: dict[str, Any]) -> dict[str, str]:
        env = {k: with_defaults(str(v)) for k, v in (svc.get("environment") or {}).items()}
        if "SC_DB_URL" in env:
            env["SC_DB_URL"] = self.db_url
        return env

    def command(self, name: str, index: int) -> tuple[list[str], dict[str, str]]:
        """The loopback argv and environment of replica `index` of compose service `name`."""
        svc = self.compose["services"][name]
        argv = [self._hosts(a) for a in argv_of(svc)]
        out: list[str] = []
        values = {"-sd": str(self.tmp / f"{name}-{index}-data"), "--health-file": str(self.tmp / f"{name}-{index}.ok")}
        if name in self.nats_ports:
            client, cluster, monitor = self.nats_ports[name]
            values.update({"-m": str(monitor), "--cluster": f"nats://127.0.0.1:{cluster}"})
            out = [find_binary(), "-a", "127.0.0.1", "-p", str(client)]
        elif argv[:1] == ["space-cloud"]:
            out = [sys.executable, "-m", "gateway.cli"]
            argv = argv[1:]
        elif argv[:1] == ["python"]:
            out = [sys.executable]
            argv = argv[1:]
        if "--port" in argv:
            port = free_port()
            self.gateway_ports.append(port)
            values.update({"--host": "127.0.0.1", "--port": str(port), "--grpc-port": str(free_port())})
        if "--metrics-port" in argv:
            port = free_port()
            self.worker_ports.append(port)
            values["--metrics-port"] = str(port)
            argv += ["--metrics-host", "127.0.0.1"]
        i = 0
        while i < len(argv):
            token = argv[i]
            out.append(token)
            if token in values and i + 1 < len(argv):
                out.append(values[token])
                i += 1
            i += 1
        return out, self._env(svc)

    # -- processes --------------------------------------------------------------------------------

    def start(self, name: str, index: int = 1) -> Process:
        argv, env = self.command(name, index)
        key = f"{name}{index}" if name not in self.nats_ports else name
        log = self.tmp / f"{key}.log"
        proc = Process(key, argv, log)
        base = {k: v for k, v in os.environ.items() if not k.startswith("SPACE_CLOUD")}
        full_env = {**base, "PYTHONPATH": str(ROOT), "HOME": str(self.tmp), **env}
        with log.open("wb") as out:
            proc.popen = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self.procs[key] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.alive:
                assert proc.popen is not None
                proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            if proc.popen is not None:
                try:
                    proc.popen.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()

    def wait_http(self, url: str, *, timeout: float = 60, check: Any = None) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            for proc in self.procs.values():
                if proc.popen is not None and proc.popen.poll() is not None and proc.popen.returncode not in (0, -9):
                    tail = proc.log.read_text(errors="replace")[-3000:]
                    raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}): {tail}")
            try:
                r = httpx.get(url, timeout=2)
                last = r.text
                if r.status_code == 200 and (check is None or check(r.json())):
                    return
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"{url} not ready in {timeout}s: {last}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log.read_text(errors='replace')[-2000:]}" for p in self.procs.values())
