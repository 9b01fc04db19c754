"""Services registered over the WebSocket (`service-register`) or gRPC's `Service` stream, bridged into
the NATS mesh.

Each registration is its own micro-service instance in the service's queue group, so a Node
service on a socket and a Python instance share calls, and discovery lists both. Calls are
pushed as `service-request` frames and answered by `service-request` replies matched on
`data.id`. When the socket closes its instances leave the mesh.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from common.errors import InternalError, ServiceUnavailable, Timeout
from gateway.core import Core
from gateway.peer import Peer
from gateway.security import Security
from mesh import subjects
from mesh.messages import Auth
from mesh.service import FunctionService

log = logging.getLogger("space_cloud.bridge")


class SocketService:
    """One service registered by one socket."""

    def __init__(self, core: Core, client: Peer, project: str, name: str, owner: str) -> None:
        self.core = core
        self.client = client
        self.project = project
        self.name = name
        self.pending: dict[str, asyncio.Future[Any]] = {}
        self.runtime = FunctionService(
            core.nc,
            project=project,
            name=name,
            any_function=self.invoke,
            max_concurrency=core.settings.socket_service_concurrency,
            metadata={"kind": client.kind, "owner": owner},
        )

    async def invoke(self, func: str, params: Any, auth: Auth) -> Any:
        if self.client.closed:
            raise ServiceUnavailable(f"service {self.name!r} instance disconnected")
        call_id = uuid.uuid4().hex
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = fut
        self.client.push(
            "service-request",
            {"id": call_id, "auth": auth or {}, "params": params, "service": self.name, "func": func, "error": ""},
        )
        try:
            return await asyncio.wait_for(fut, self.core.settings.max_function_timeout)
        except TimeoutError:
            raise Timeout(f"service {self.name!r} did not answer") from None
        finally:
            self.pending.pop(call_id, None)

    def answer(self, call_id: str, data: dict[str, Any]) -> bool:
        fut = self.pending.get(call_id)
        if fut is None or fut.done():
            return False
        error = data.get("error")
        if error:
            fut.set_exception(InternalError(str(error)))
        else:
            fut.set_result(data.get("params"))
        return True

    async def stop(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable(f"service {self.name!r} instance disconnected"))
        await self.runtime.stop(drain_timeout=0.1)


class Bridge:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self._by_client: dict[str, dict[str, SocketService]] = {}

    async def on_register(self, client: Peer, req_id: str, data: dict[str, Any]) -> None:
        project_id = client.project_of(data)
        project = self.core.project(project_id)
        service = data.get("service")
        subjects.check_name("service", service if isinstance(service, str) else "")
        assert isinstance(service, str)
        token = data.get("token") if isinstance(data.get("token"), str) else None
        owner = await self.security.register(project, service, self.security.claims(project, token), token)
        mine = self._by_client.setdefault(client.id, {})
        if service not in mine:
            svc = SocketService(self.core, client, project.id, service, owner)
            await svc.runtime.start()
            if client.closed:  # closed while registering, after its close hook ran
                await svc.stop()
                self._by_client.pop(client.id, None)
                return
            mine[service] = svc
            log.info("service %s registered over %s %s", service, client.kind, client.id)
        client.reply(req_id, "service-register", {"ack": True})

    async def on_reply(self, client: Peer, req_id: str, data: dict[str, Any]) -> None:
        call_id = data.get("id")
        if not isinstance(call_id, str):
            return
        for svc in self._by_client.get(client.id, {}).values():
            if svc.answer(call_id, data):
                return

    async def on_close(self, client: Peer) -> None:
        for svc in self._by_client.pop(client.id, {}).values():
            await svc.stop()

    async def stop(self) -> None:
        for services in list(self._by_client.values()):
            for svc in services.values():
                await svc.stop()
        self._by_client.clear()
