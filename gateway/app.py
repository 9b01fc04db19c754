"""The composition root: builds the core, the features, the route table, the WebSocket handler table
and the lifecycle, and is the ASGI app. The pieces it assembles never import it.

Every HTTP and WebSocket endpoint of the gateway is in `routes()` below.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket

from gateway.admin import Admin
from gateway.admin_data import AdminData
from gateway.admin_rules import AdminRules
from gateway.admin_users import AdminUsers, DisabledUsers
from gateway.bridge import Bridge
from gateway.config import Config
from gateway.core import Core
from gateway.crud import Crud
from gateway.functions import Functions
from gateway.health import Health
from gateway.http import ASGIApp, CORSMiddleware, Receive, Request, Scope, Send, send_json
from gateway.live.manager import LiveQueries
from gateway.mission_control import MissionControl
from gateway.observability import Observed
from gateway.routing import Route, Router, route, websocket
from gateway.security import Security
from gateway.static import Static
from gateway.users import Users
from gateway.ws import Client, CloseHook, Handler
from mesh.connect import NatsTarget
from mesh.limits import STATE_NAMES
from mesh.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from gateway.grpc.servicer import SpaceCloudServicer

log = logging.getLogger("space_cloud.gateway")


class Gateway:
    """One gateway process: the core and every feature on it."""

    def __init__(self, config: Config, *, nats_url: str | NatsTarget, dev: bool = False) -> None:
        self.core = core = Core(config, nats_url=nats_url, dev=dev)
        self.security = security = Security(core)
        self.crud = Crud(core, security)
        self.functions = Functions(core, security)
        self.users = Users(core, security)
        self.admin = Admin(core, security)
        self.admin_data = AdminData(self.admin)
        self.admin_users = AdminUsers(self.admin, self.users)
        self.admin_rules = AdminRules(self.admin)
        self.disabled_users = DisabledUsers(core, security)
        self.static = Static(core)
        self.mission_control = MissionControl()
        self.bridge = Bridge(core, security)
        self.live = LiveQueries(core, security)
        self.ws_handlers: dict[str, Handler] = {
            "service-register": self.bridge.on_register,
            "service-request": self.bridge.on_reply,
            "realtime-subscribe": self.live.on_subscribe,
            "realtime-unsubscribe": self.live.on_unsubscribe,
        }
        self.ws_close_hooks: list[CloseHook] = [self.bridge.on_close, self.live.on_close]
        self.clients: dict[str, Client] = {}
        self.health_check = Health(core)
        self._gauges()
        self.router = Router(self.routes(), body_timeout=config.gateway.body_timeout)

    def routes(self) -> list[Route]:
        auth = "/v1/api/{project}/auth/{alias}"
        admin = "/v1/api/config/projects/{project}"
        return [
            # the hot paths
            route("POST", "/v1/api/{project}/functions/{service}/{func}", self.functions.call),
            route("POST", "/v1/api/{project}/crud/{alias}/batch", self.crud.batch),
            route("POST", "/v1/api/{project}/crud/{alias}/{col}/{kind}", self.crud.handle),
            websocket("/v1/api/{project}/socket/json", self.socket),
            websocket("/v1/api/socket/json", self.socket),
            # discovery, status
            route("GET", "/v1/api/{project}/services", self.functions.services),
            route("GET", "/v1/api/health", self.health),
            route("GET", "/metrics", self.metrics),
            route("GET", "/v1/api/config/env", self.env),
            # email users
            route("POST", auth + "/email/signup", self.users.http_signup),
            route("POST", auth + "/email/signin", self.users.http_signin),
            route("GET", auth + "/profile/{uid}", self.users.http_profile),
            route("GET", auth + "/profiles", self.users.http_profiles),
            route("PUT POST", auth + "/edit_profile/{uid}", self.users.http_edit),
            # admin: the config API
            route("POST", "/v1/api/config/login", self.admin.http_login),
            route("GET", "/v1/api/config/projects", self.admin.http_projects),
            route("POST", "/v1/api/config/projects", self.admin.http_set_project),
            route("DELETE", "/v1/api/config/{project}", self.admin.http_delete_project),
            # admin: what Mission Control's views need (gateway/admin_data.py, admin_users.py, admin_rules.py)
            route("GET", admin + "/databases", self.admin_data.http_databases),
            route("PUT", admin + "/databases/{alias}", self.admin_data.http_put_database),
            route("DELETE", admin + "/databases/{alias}", self.admin_data.http_delete_database),
            route("POST", admin + "/databases/{alias}/test", self.admin_data.http_test_database),
            route("POST", admin + "/data/{alias}/{col}/{kind}", self.admin_data.http_data),
            route("GET", admin + "/data/{alias}/{col}/changes", self.admin_data.http_changes),
            route("GET", admin + "/users/{alias}", self.admin_users.http_list),
            route("POST", admin + "/users/{alias}/{uid}", self.admin_users.http_update),
            route("DELETE", admin + "/users/{alias}/{uid}", self.admin_users.http_delete),
            route("POST", admin + "/users/{alias}/{uid}/password", self.admin_users.http_password),
            route("PUT", admin + "/rules/crud/{alias}/{col}/{op}", self.admin_rules.http_put_crud),
            route("DELETE", admin + "/rules/crud/{alias}/{col}/{op}", self.admin_rules.http_delete_crud),
            route("PUT", admin + "/rules/functions/{service}/{func}", self.admin_rules.http_put_function),
            route("DELETE", admin + "/rules/functions/{service}/{func}", self.admin_rules.http_delete_function),
            route("POST", admin + "/rules/validate", self.admin_rules.http_validate),
            route("POST", admin + "/playground", self.admin_rules.http_playground),
            route("POST", admin + "/functions/{service}/{func}", self.admin_rules.http_call),
            # files: the browser client, Mission Control, and (last, a catch-all) the projects' static routes
            route("GET HEAD", "/v1/api/sdk/{name}", self.static.sdk_file),
            route("GET HEAD", "/mission-control/{rest:path}", self.mission_control.serve),
            route("GET HEAD", "/{path:path}", self.static.project_file),
        ]

    def origin_allowed(self, scope: Scope, origin: bytes) -> bool:
        """A project's API follows its `allowedOrigins`; everything else (the config API, Mission Control,
        files) answers only its own origin and `admin.allowedOrigins`, with or without `--dev`."""
        text = origin.decode("latin-1")
        parts = str(scope["path"]).split("/")
        if len(parts) > 4 and parts[1:3] == ["v1", "api"] and parts[3] not in ("config", "sdk"):
            project = self.core.config.project(parts[3])
            return project is None or project.allows_origin(text)  # an unknown project is a plain 404
        if parts[1:3] == ["v1", "api"] and parts[3:4] == ["sdk"]:
            return True  # the browser client's files are public
        return text in self.core.config.admin.allowed_origins

    def grpc_servicer(self) -> SpaceCloudServicer:
        """gRPC's `proto.SpaceCloud` over these same features (`gateway.grpc`; served by `space-cloud run`).

        Imported here, not at the top: loading it generates the gRPC stubs when they are missing."""
        from gateway.grpc.servicer import SpaceCloudServicer

        return SpaceCloudServicer(self.core, crud=self.crud, functions=self.functions, users=self.users,
                                  live=self.live, bridge=self.bridge)

    # -- small endpoints ----------------------------------------------------------------------------

    async def health(self, request: Request) -> None:
        status, body = await self.health_check.report()
        await send_json(request.send, status, orjson.dumps(body))

    async def metrics(self, request: Request) -> None:
        """Prometheus text format: this gateway's registry (and an in-process worker's)."""
        body = self.core.metrics.registry.render()
        await request.send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]})
        await request.send({"type": "http.response.body", "body": body})

    def _gauges(self) -> None:
        m = self.core.metrics
        m.gauge("sc_websocket_connections", "Open WebSocket connections", [],
                lambda: [((), float(len(self.clients)))])
        m.gauge("sc_live_queries", "Live queries subscribed on this gateway", [],
                lambda: [((), float(sum(len(q) for q in self.live.by_client.values())))])
        m.gauge("sc_live_shared_queries", "Distinct live queries (shared by their subscribers)", [],
                lambda: [((), float(sum(len(f.queries) for f in self.live.feeds.values())))])
        m.gauge("sc_service_breaker_state", "Per called service: 0 closed, 1 half-open (probing), 2 open "
                "(failing fast); see sc_breaker_state_info", ["project", "service"],
                lambda: [(k, float(g.breaker.state)) for k, g in self.core.services.items()])
        m.gauge("sc_service_calls_in_flight", "Calls in flight from this gateway per service",
                ["project", "service"], lambda: [(k, float(g.running)) for k, g in self.core.services.items()])
        m.gauge("sc_service_instances", "Instances per service (discovery, refreshed every few seconds)",
                ["project", "service"], lambda: [(k, float(n)) for k, n in self.core.directory.instances.items()])
        m.gauge("sc_breaker_state_info", "1 for the state each service breaker is in", ["project", "service", "state"],
                lambda: [((*k, STATE_NAMES[g.breaker.state]), 1.0) for k, g in self.core.services.items()])

    async def env(self, _request: Request) -> dict[str, Any]:
        return {"isProd": not self.core.dev}

    async def socket(self, scope: Scope, receive: Receive, send: Send, params: dict[str, str]) -> None:
        ws = WebSocket(scope, receive, send)
        settings = self.core.settings
        client = Client(ws, send, project=params.get("project"), max_queue=settings.ws_queue,
                        max_in_flight=settings.socket_requests)
        self.clients[client.id] = client
        self.core.metrics.sockets_opened.value += 1
        try:
            await client.serve(self.ws_handlers, self.ws_close_hooks)
        finally:
            self.clients.pop(client.id, None)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.core.start()
        await self.live.start()
        await self.disabled_users.start()

    async def stop(self) -> None:
        self.health_check.stopping = True
        for client in list(self.clients.values()):
            client.close(1001, "server shutting down")
        await self.bridge.stop()
        await self.live.stop()
        await self.disabled_users.stop()
        await self.core.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.router.http(scope, receive, send)
        elif kind == "websocket":
            if not await self.router.socket(scope, receive, send):
                await WebSocket(scope, receive, send).close(code=4004, reason="no websocket at this path")
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(gw: Gateway) -> ASGIApp:
    return Observed(CORSMiddleware(gw, gw.origin_allowed), gw.core.metrics)
