"""`Mesh`: write a service in a few lines, call other services, run it with drain on SIGTERM.

    from sdk import Mesh
    mesh = Mesh("todo")

    @mesh.function
    async def stats(params, auth): ...

    mesh.run()
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TypeVar, overload

from nats.aio.client import Client

from mesh import devstate, logs, roles, subjects
from mesh.codec import pack, unpack
from mesh.connect import NatsTarget, connect, disconnect
from mesh.context import budget
from mesh.loop import run as run_main
from mesh.requester import Requester
from mesh.service import FunctionService, Handler, as_handler

log = logging.getLogger("space_cloud.sdk")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PROJECT = "myproject"


class MeshNotStarted(RuntimeError):
    """Raised when the mesh is used before `start()` (or `async with mesh:`)."""


ENV_CREDENTIALS = {
    "creds_file": "SPACE_CLOUD_NATS_CREDS", "nkey_file": "SPACE_CLOUD_NATS_NKEY", "token": "SPACE_CLOUD_NATS_TOKEN",
    "user": "SPACE_CLOUD_NATS_USER", "password": "SPACE_CLOUD_NATS_PASSWORD", "tls_ca": "SPACE_CLOUD_NATS_TLS_CA",
    "tls_cert": "SPACE_CLOUD_NATS_TLS_CERT", "tls_key": "SPACE_CLOUD_NATS_TLS_KEY",
}
"""Credentials for an external NATS, from the environment (the same names `space-cloud` reads)."""


@dataclass(frozen=True)
class Connection:
    target: NatsTarget
    project: str
    dev_server: DevServer | None = None
    """Set when the target came from the local dev server's state file (the service follows it)."""


def resolve_connection(
    service: str,
    *,
    nats_url: str | None = None,
    project: str | None = None,
    nats: NatsTarget | None = None,
    env: Mapping[str, str] = os.environ,
) -> Connection:
    """Arguments first, then SPACE_CLOUD_NATS (+ SPACE_CLOUD_NATS_* credentials) / SPACE_CLOUD_PROJECT,
    then the local dev server (its URL and the service password from its state file)."""
    inbox = roles.service(service).inbox
    proj = project or env.get("SPACE_CLOUD_PROJECT")
    url = nats_url or (nats.url if nats is not None and nats.url else None) or env.get("SPACE_CLOUD_NATS")
    if url:
        if nats is None:
            creds = {field: env[name] for field, name in ENV_CREDENTIALS.items() if env.get(name)}
            nats = NatsTarget(url, **creds)
        target = replace(nats, url=url, inbox_prefix=nats.inbox_prefix or inbox)
        return Connection(target, str(proj or DEFAULT_PROJECT))
    dev = DevServer.find(env.get("SPACE_CLOUD_HOME"))
    if dev is None:
        raise MeshNotStarted(
            "no NATS URL: start `space-cloud run` on this machine, or pass nats_url= / --nats / SPACE_CLOUD_NATS"
        )
    target = NatsTarget(dev.url, user=service, password=dev.current_password, inbox_prefix=inbox)
    return Connection(target, str(proj or dev.project or DEFAULT_PROJECT), dev)


class DevServer:
    """The local `space-cloud run` a service found through the dev-state file, followed across restarts:
    when the connection is lost, the file is read again until the server is back, and the connection is
    pointed at its new URL and password (nats-py reconnects, subscriptions and all)."""

    POLL = 0.2

    def __init__(self, home: str | None, info: dict[str, Any]) -> None:
        self._home = home
        self.url = str(info.get("nats_url"))
        self.project = str(info["project"]) if info.get("project") else None
        self._password = str(info.get("service_password") or "")
        self._nc: Client | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def find(cls, home: str | None) -> DevServer | None:
        info = devstate.read(home=home)
        return cls(home, info) if info is not None and info.get("nats_url") else None

    def current_password(self) -> str:
        return self._password

    def attach(self, nc: Client) -> None:
        self._nc = nc

    async def on_disconnect(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        nc = self._nc
        while nc is not None and not nc.is_connected and not nc.is_closed:
            info = devstate.read(home=self._home)
            if info is not None and info.get("nats_url"):
                self._password = str(info.get("service_password") or "")
                url = str(info["nats_url"])
                if url != self.url:
                    log.info("the development server moved to %s", url)
                    self.url = url
                    nc.set_server_pool([url])
            await asyncio.sleep(self.POLL)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def run_arguments() -> argparse.ArgumentParser:
    """The command-line arguments `Mesh.run()` reads (others are left to the service)."""
    parser = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]), add_help=False)
    parser.add_argument("--nats")
    parser.add_argument("--project")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text")
    parser.add_argument("--health-file")
    return parser


class Mesh:
    """A service in the function mesh. Registration (`@mesh.function`) is separate from running."""

    def __init__(
        self,
        service: str,
        *,
        project: str | None = None,
        nats_url: str | None = None,
        nats: NatsTarget | None = None,
        max_concurrency: int = 64,
        version: str = "0.1.0",
        drain_timeout: float = 30.0,
    ) -> None:
        subjects.check_name("service", service)
        self.service = service
        self._project = project
        self._nats_url = nats_url
        self._nats = nats
        self._dev: DevServer | None = None
        self._max_concurrency = max_concurrency
        self._version = version
        self._drain_timeout = drain_timeout
        self._functions: dict[str, Handler] = {}
        self._idempotent: set[str] = set()
        self._nc: Client | None = None
        self._requester: Requester | None = None
        self._runtime: FunctionService | None = None
        self._subjects: dict[tuple[str, str], str] = {}
        self.project = project or ""

    @overload
    def function(self, fn: F) -> F: ...
    @overload
    def function(self, *, name: str | None = None, idempotent: bool = False) -> Callable[[F], F]: ...

    def function(self, fn: F | None = None, *, name: str | None = None, idempotent: bool = False
                 ) -> F | Callable[[F], F]:
        """Register `fn` as a function of this service (called as `fn(params, auth)`).

        `idempotent=True`: running it twice does no harm (a read, a put of the same value), so a
        gateway may retry it on another instance after an instance failed (advertised in discovery)."""

        def register(f: F) -> F:
            fname = name or f.__name__
            subjects.check_name("function", fname)
            if self._runtime is not None:
                raise RuntimeError("register functions before the mesh starts")
            self._functions[fname] = as_handler(f)
            if idempotent:
                self._idempotent.add(fname)
            else:
                self._idempotent.discard(fname)
            return f

        return register(fn) if fn is not None else register

    @property
    def functions(self) -> list[str]:
        return sorted(self._functions)

    @property
    def instance_id(self) -> str:
        if self._runtime is None:
            raise MeshNotStarted("mesh not started")
        return self._runtime.id

    async def start(self) -> None:
        if self._nc is not None:
            return
        conn = resolve_connection(self.service, nats_url=self._nats_url, project=self._project, nats=self._nats)
        project = subjects.check_name("project", conn.project)
        self.project = project
        self._subjects.clear()
        dev = self._dev = conn.dev_server
        # On loopback a server answers at once: a short connect timeout keeps a reconnect attempt to a
        # port someone else took from holding the service back from the dev server's new one.
        nc = await connect(conn.target, name=f"service:{self.service}", connect_timeout=5.0 if dev is None else 2.0,
                           on_disconnect=dev.on_disconnect if dev is not None else None)
        if dev is not None:
            dev.attach(nc)
        self._nc = nc
        self._requester = Requester(nc)
        await self._requester.start()
        if self._functions:
            self._runtime = FunctionService(
                nc,
                project=project,
                name=self.service,
                functions=self._functions,
                max_concurrency=self._max_concurrency,
                idempotent=frozenset(self._idempotent),
                version=self._version,
            )
            await self._runtime.start()
        log.info("service %s (project %s) on %s: %s", self.service, project, conn.target.url,
                 ", ".join(self.functions) or "-")

    async def stop(self) -> None:
        """Drain: no new calls, in-flight calls finish, then disconnect."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.stop(drain_timeout=self._drain_timeout)
        nc, self._nc = self._nc, None
        self._requester = None
        dev, self._dev = self._dev, None
        if dev is not None:
            await dev.stop()
        await disconnect(nc)

    async def __aenter__(self) -> Mesh:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def call(
        self,
        service: str,
        func: str,
        params: Any = None,
        *,
        timeout: float = 5.0,
        auth: dict[str, Any] | None = None,
    ) -> Any:
        """Call `service.func` anywhere in the mesh; raises the `SpaceCloudError` the callee raised."""
        if self._requester is None:
            raise MeshNotStarted("call() needs a started mesh: await mesh.start() or use `async with mesh:`")
        subject = self._subjects.get((service, func))
        if subject is None:
            subjects.check_name("service", service)
            subjects.check_name("function", func)
            subject = subjects.fn(self.project, service, func)
            if len(self._subjects) < 4096:
                self._subjects[(service, func)] = subject
        data = await self._requester.request(
            subject,
            pack({"params": params, "auth": auth}),
            budget(timeout),
            what=f"service {service!r}",
        )
        return unpack(data)

    def run(self, argv: Sequence[str] | None = None) -> None:
        """Run until SIGINT/SIGTERM, then drain. Reads `--nats URL`, `--project ID`, `--log-format
        text|json` (log lines carry the id of the request they are about) and `--health-file PATH`
        (touched every few seconds while connected to NATS: a container health check reads its age)
        from argv."""
        ns, _ = run_arguments().parse_known_args(sys.argv[1:] if argv is None else argv)
        self._nats_url = ns.nats or self._nats_url
        self._project = ns.project or self._project
        if not logging.getLogger().handlers:
            logs.configure("info", ns.log_format)
        run_main(self._serve(ns.health_file))

    HEALTH_EVERY = 5.0
    """Seconds between touches of the health file."""

    async def _serve(self, health_file: str | None = None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        beat = loop.create_task(self._beat(health_file)) if health_file else None
        try:
            await stop.wait()
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(BaseException):
                    await beat
                with contextlib.suppress(OSError):
                    os.unlink(health_file or "")
            log.info("draining %s", self.service)
            await self.stop()

    async def _beat(self, path: str | None) -> None:
        while path:
            nc = self._nc
            if nc is not None and nc.is_connected:
                with contextlib.suppress(OSError):
                    with open(path, "a"):  # noqa: ASYNC230 (a tiny local file)
                        pass
                    os.utime(path)
            await asyncio.sleep(self.HEALTH_EVERY)

