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
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from nats.aio.client import Client

from mesh import devstate, subjects
from mesh.codec import pack, unpack
from mesh.connect import connect, disconnect
from mesh.loop import run as run_main
from mesh.requester import Requester
from mesh.service import FunctionService, Handler, as_handler

log = logging.getLogger("space_cloud.sdk")

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PROJECT = "myproject"


class MeshNotStarted(RuntimeError):
    """Raised when the mesh is used before `start()` (or `async with mesh:`)."""


def resolve_connection(nats_url: str | None, project: str | None) -> tuple[str, str]:
    """Arguments first, then SPACE_CLOUD_NATS / SPACE_CLOUD_PROJECT, then the local dev server."""
    url = nats_url or os.environ.get("SPACE_CLOUD_NATS")
    proj = project or os.environ.get("SPACE_CLOUD_PROJECT")
    if not url or not proj:
        dev = devstate.read(home=os.environ.get("SPACE_CLOUD_HOME"))
        if dev is not None:
            url = url or dev.get("nats_url")
            proj = proj or dev.get("project")
    if not url:
        raise MeshNotStarted(
            "no NATS URL: start `space-cloud run` on this machine, or pass nats_url= / --nats / SPACE_CLOUD_NATS"
        )
    return str(url), str(proj or DEFAULT_PROJECT)


class Mesh:
    """A service in the function mesh. Registration (`@mesh.function`) is separate from running."""

    def __init__(
        self,
        service: str,
        *,
        project: str | None = None,
        nats_url: str | None = None,
        max_concurrency: int = 64,
        version: str = "0.1.0",
        drain_timeout: float = 30.0,
    ) -> None:
        subjects.check_name("service", service)
        self.service = service
        self._project = project
        self._nats_url = nats_url
        self._max_concurrency = max_concurrency
        self._version = version
        self._drain_timeout = drain_timeout
        self._functions: dict[str, Handler] = {}
        self._nc: Client | None = None
        self._requester: Requester | None = None
        self._runtime: FunctionService | None = None
        self._subjects: dict[tuple[str, str], str] = {}
        self.project = project or ""

    @overload
    def function(self, fn: F) -> F: ...
    @overload
    def function(self, *, name: str) -> Callable[[F], F]: ...

    def function(self, fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
        """Register `fn` as a function of this service (called as `fn(params, auth)`)."""

        def register(f: F) -> F:
            fname = name or f.__name__
            subjects.check_name("function", fname)
            if self._runtime is not None:
                raise RuntimeError("register functions before the mesh starts")
            self._functions[fname] = as_handler(f)
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
        url, project = resolve_connection(self._nats_url, self._project)
        subjects.check_name("project", project)
        self.project = project
        self._subjects.clear()
        nc = await connect(url, name=f"service:{self.service}")
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
                version=self._version,
            )
            await self._runtime.start()
        log.info("service %s (project %s) on %s: %s", self.service, project, url, ", ".join(self.functions) or "-")

    async def stop(self) -> None:
        """Drain: no new calls, in-flight calls finish, then disconnect."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.stop(drain_timeout=self._drain_timeout)
        nc, self._nc = self._nc, None
        self._requester = None
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
            timeout,
            what=f"service {service!r}",
        )
        return unpack(data)

    def run(self, argv: Sequence[str] | None = None) -> None:
        """Run until SIGINT/SIGTERM, then drain. Reads `--nats URL` and `--project ID` from argv."""
        parser = argparse.ArgumentParser(prog=os.path.basename(sys.argv[0]), add_help=False)
        parser.add_argument("--nats")
        parser.add_argument("--project")
        ns, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
        self._nats_url = ns.nats or self._nats_url
        self._project = ns.project or self._project
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        run_main(self._serve())

    async def _serve(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("draining %s", self.service)
            await self.stop()

