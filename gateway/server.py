"""The gateway: holds the NATS connection and the per-process parts, and is the ASGI app.

Hot routes (function calls, CRUD) are matched by hand and served by lean handlers; the rest
(discovery, auth, admin, static files) is a FastAPI app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as Nats
from starlette.websockets import WebSocket

from common.errors import NotFound
from gateway.bridge import Bridge
from gateway.config import Config, ProjectConfig
from gateway.crud import handle_crud
from gateway.functions import handle_call
from gateway.http import CORSMiddleware, Receive, Scope, Send, send_error
from gateway.live.manager import LiveQueries
from gateway.ws import Client, CloseHook, Handler
from mesh import subjects
from mesh.codec import pack, unpack
from mesh.connect import connect, disconnect
from mesh.requester import Requester

log = logging.getLogger("space_cloud.gateway")


@dataclass
class Settings:
    dev: bool = False
    ws_queue: int = 1024
    socket_service_concurrency: int = 64
    db_timeout: float = 10.0
    change_retention: float = 3600.0
    """Seconds of change events kept (JetStream) for clients that reconnect and resume."""


class Gateway:
    def __init__(self, config: Config, *, nats_url: str, settings: Settings | None = None) -> None:
        self.config = config
        self.nats_url = nats_url
        self.settings = settings or Settings()
        self._nc: Nats | None = None
        self._requester: Requester | None = None
        self.bridge = Bridge(self)
        self.live = LiveQueries(self)
        self.ws_handlers: dict[str, Handler] = {
            "service-register": self.bridge.on_register,
            "service-request": self.bridge.on_reply,
            "realtime-subscribe": self.live.on_subscribe,
            "realtime-unsubscribe": self.live.on_unsubscribe,
        }
        self.ws_close_hooks: list[CloseHook] = [self.bridge.on_close, self.live.on_close]
        self.clients: dict[str, Client] = {}
        self.config_listeners: list[Callable[[Config], None]] = []

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
        await self.live.start()

    async def stop(self) -> None:
        for client in list(self.clients.values()):
            client.close(1001, "server shutting down")
        await self.bridge.stop()
        await self.live.stop()
        nc, self._nc = self._nc, None
        await disconnect(nc)

    def apply_config(self, config: Config) -> None:
        """Swap in a new (validated) config without a restart; listeners (the in-process worker) follow."""
        config.admin = self.config.admin
        self.config = config
        for listener in self.config_listeners:
            listener(config)

    def project(self, project_id: str) -> ProjectConfig:
        project = self.config.project(project_id)
        if project is None:
            raise NotFound(f"project {project_id!r} is not served here")
        return project

    async def call_function(
        self, project: str, service: str, func: str, params: Any, auth: dict[str, Any] | None, *, timeout: float
    ) -> Any:
        data = await self.requester.request(
            subjects.fn(project, service, func),
            pack({"params": params, "auth": auth}),
            timeout,
            what=f"service {service!r}",
        )
        return unpack(data)

    async def db_request(self, project: str, alias: str, op: str, body: dict[str, Any]) -> Any:
        """A request to the db workers (queue group `sc.db`); their errors come back as `SpaceCloudError`s."""
        envelope = {"params": {**body, "project": project, "alias": alias}}
        data = await self.requester.request(
            subjects.db(project, alias, op), pack(envelope), self.settings.db_timeout, what="the db worker"
        )
        return unpack(data)

    async def serve_socket(self, ws: WebSocket, send: Send, project: str | None) -> None:
        client = Client(ws, send, project=project, max_queue=self.settings.ws_queue)
        self.clients[client.id] = client
        try:
            await client.serve(self.ws_handlers, self.ws_close_hooks)
        finally:
            self.clients.pop(client.id, None)


class GatewayApp:
    """The ASGI entry point (wrapped in CORS by `build_app`)."""

    def __init__(self, gw: Gateway) -> None:
        from gateway.api import build_api

        self.gw = gw
        self.api = build_api(gw)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["method"] == "POST":
                parts = scope["path"].split("/")
                if len(parts) >= 7 and parts[1] == "v1" and parts[2] == "api":
                    section = parts[4]
                    if section == "functions" and len(parts) == 7:
                        try:
                            await handle_call(self.gw, scope, receive, send, parts[3], parts[5], parts[6])
                        except Exception as exc:
                            await send_error(send, exc)
                        return
                    if section == "crud" and len(parts) in (7, 8):
                        try:
                            await handle_crud(self.gw, scope, receive, send, parts)
                        except Exception as exc:
                            await send_error(send, exc)
                        return
            await self.api(scope, receive, send)
        elif kind == "websocket":
            parts = scope["path"].rstrip("/").split("/")
            ws = WebSocket(scope, receive, send)
            if parts[:3] == ["", "v1", "api"] and parts[-2:] == ["socket", "json"] and len(parts) in (5, 6):
                await self.gw.serve_socket(ws, send, parts[3] if len(parts) == 6 else None)
            else:
                await ws.close(code=4004, reason="no websocket at this path")
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gw.start()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gw.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(gw: Gateway) -> CORSMiddleware:
    return CORSMiddleware(GatewayApp(gw))
