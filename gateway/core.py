"""The gateway's core: the NATS connection, the requester, the config, and the two ways to reach the mesh.

It knows no feature (no CRUD, no users, no live queries, no HTTP): features are handed a `Core` by the
composition root (`gateway.app`) and ask it for `project()`, `db_request()` and `call_function()`.
Every transport (HTTP, WebSocket, gRPC) goes through the same core. Calls to services pass their
bulkhead, breaker and retries here (`gateway.calls`); `metrics` is this gateway's registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as Nats

from common.errors import InternalError, NoInstance, NotFound, ServiceUnavailable, SpaceCloudError, Timeout
from gateway.calls import BACKOFF, Directory, ServiceGuard
from gateway.config import Config, GatewaySettings, ProjectConfig
from gateway.metrics import CallStats, GatewayMetrics
from mesh import subjects
from mesh.codec import unpack
from mesh.connect import NatsTarget, connect, disconnect
from mesh.context import budget
from mesh.messages import Auth, Call, DbRequest
from mesh.requester import Requester


class Core:
    def __init__(self, config: Config, *, nats_url: str | NatsTarget, dev: bool = False) -> None:
        self.config = config
        self.nats_url = nats_url
        self.dev = dev
        """`--dev`: admin endpoints answer without a token (never in production)."""
        self._nc: Nats | None = None
        self._requester: Requester | None = None
        self.config_listeners: list[Callable[[Config], None]] = []
        self.metrics = GatewayMetrics()
        self.directory = Directory()
        self.services: dict[tuple[str, str], ServiceGuard] = {}
        """Per (project, service) called from here: its bulkhead and breaker."""

    @property
    def settings(self) -> GatewaySettings:
        return self.config.gateway

    @property
    def nc(self) -> Nats:
        if self._nc is None:
            raise RuntimeError("gateway not started")
        return self._nc

    @property
    def requester(self) -> Requester:
        if self._requester is None:
            raise RuntimeError("gateway not started")
        return self._requester

    async def start(self) -> None:
        self._nc = await connect(self.nats_url, name="space-cloud-gateway")
        self._requester = Requester(self._nc)
        await self._requester.start()
        self.directory.start(self._nc)

    async def stop(self) -> None:
        await self.directory.stop()
        nc, self._nc = self._nc, None
        self._requester = None
        await disconnect(nc)

    def apply_config(self, config: Config) -> None:
        """Swap in a new (validated) config without a restart; listeners (the in-process worker) follow.

        The admin credentials and the process settings stay as the process started with them."""
        config.admin = self.config.admin
        config.gateway = self.config.gateway
        self.config = config
        for listener in self.config_listeners:
            listener(config)

    def project(self, project_id: str) -> ProjectConfig:
        project = self.config.project(project_id)
        if project is None:
            raise NotFound(f"project {project_id!r} is not served here")
        return project

    async def call_function(
        self, project: str, service: str, func: str, params: Any, auth: Auth, *, timeout: float
    ) -> Any:
        """Call `service.func` (queue group = the service): 503 at once when this gateway's limit for the
        service is full or its breaker is open; idempotent functions are retried (`gateway.calls`)."""
        guard = self.services.get((project, service))
        if guard is None:
            guard = self.services[(project, service)] = ServiceGuard(project, service,
                                                                     self.settings.service_concurrency)
        stats: CallStats | None = guard.stats.get(func)
        if stats is None:
            stats = guard.stats[func] = self.metrics.call(project, service, func)
        if guard.running >= guard.limit:
            stats.outcome("rejected")
            raise ServiceUnavailable(f"{guard.label} has {guard.limit} calls in flight from this gateway, its "
                                     "limit (gateway.serviceConcurrency); try again shortly")
        if not guard.breaker.allow():
            stats.outcome("breaker_open")
            raise ServiceUnavailable(f"{guard.label} is failing, calls are refused at once: "
                                     f"{guard.breaker.describe()}")
        guard.running += 1
        start = time.perf_counter()
        try:
            data = await self._attempts(project, service, func, Call(params, auth).encode(), timeout, guard, stats)
        finally:
            guard.running -= 1
            stats.latency.observe(time.perf_counter() - start)
        return unpack(data)

    async def _attempts(self, project: str, service: str, func: str, payload: bytes, timeout: float,
                        guard: ServiceGuard, stats: CallStats) -> bytes:
        subject = subjects.fn(project, service, func)
        deadline = time.monotonic() + budget(timeout)
        retries = 0
        while True:
            try:
                data = await self.requester.request(subject, payload, deadline - time.monotonic(),
                                                    what=guard.label)
            except SpaceCloudError as exc:
                if exc.status < 500:
                    guard.breaker.success()  # the service answered: it works
                    stats.outcome("client_error")
                    raise
                no_instance = isinstance(exc, NoInstance)
                if self._may_retry(exc, project, service, func, retries, deadline):
                    await asyncio.sleep(BACKOFF[min(retries, len(BACKOFF) - 1)])
                    retries += 1
                    stats.retries.value += 1
                    continue
                if not no_instance:
                    guard.breaker.failure(exc.message)
                stats.outcome("no_instance" if no_instance else "timeout" if isinstance(exc, Timeout)
                              else "unavailable" if isinstance(exc, ServiceUnavailable) else "error")
                raise
            guard.breaker.success()
            stats.outcome("ok")
            return data

    def _may_retry(self, exc: SpaceCloudError, project: str, service: str, func: str, retries: int,
                   deadline: float) -> bool:
        wait = BACKOFF[min(retries, len(BACKOFF) - 1)]
        if deadline - time.monotonic() <= wait * 2:
            return False
        if isinstance(exc, NoInstance) and retries == 0:
            return True  # it reached nobody: safe for any function
        return (isinstance(exc, ServiceUnavailable | InternalError) and retries < self.settings.function_retries
                and (project, service, func) in self.directory.idempotent)

    async def db_request(self, project: str, alias: str, kind: str, req: DbRequest) -> Any:
        """A request to the db workers (queue group `sc.db`); their errors come back as the same error classes."""
        data = await self.requester.request(
            subjects.db(project, alias, kind), req.encode(), budget(self.settings.db_timeout),
            what="the db worker", detail=self._db_label(project, alias),
        )
        return unpack(data)

    def _db_label(self, project: str, alias: str) -> str:
        """`postgres alias sql-postgres`: what an error about this database names."""
        found = self.config.project(project)
        db = found.crud.get(alias) if found is not None else None
        return f"{db.type} alias {alias}" if db is not None else f"alias {alias}"
