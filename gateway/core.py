"""The gateway's core: the NATS connection, the requester, the config, and the two ways to reach the mesh.

It knows no feature (no CRUD, no users, no live queries, no HTTP): features are handed a `Core` by the
composition root (`gateway.app`) and ask it for `project()`, `db_request()` and `call_function()`.
Every transport (HTTP, WebSocket, gRPC) goes through the same core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as Nats

from common.errors import NotFound
from gateway.config import Config, GatewaySettings, ProjectConfig
from mesh import subjects
from mesh.codec import unpack
from mesh.context import budget
from mesh.connect import NatsTarget, connect, disconnect
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

    async def stop(self) -> None:
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
        data = await self.requester.request(
            subjects.fn(project, service, func), Call(params, auth).encode(), timeout, what=f"service {service!r}"
        )
        return unpack(data)

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
