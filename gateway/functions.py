"""The function mesh over HTTP: calls from frontends, and the list of running services.

`POST /v1/api/<project>/functions/<service>/<func>`, body `{"params": ..., "timeout": <ms>}` exactly as
the official client's `api.call()` sends it; answer `200 {"result": ...}`. The timeout is read as
milliseconds (Space Cloud read seconds, a bug). `GET /v1/api/<project>/services` lists services from
NATS micro discovery.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.errors import BadRequest, NotFound
from gateway.config import ProjectConfig
from gateway.core import Core
from gateway.http import Request
from gateway.security import Security
from mesh import subjects
from mesh.discovery import list_services

DEFAULT_TIMEOUT_MS = 5000


def call_timeout(raw: Any, ceiling: float) -> float:
    """Seconds to wait: `timeout` in ms (default 5000), capped by the configured ceiling."""
    if raw is None:
        raw = DEFAULT_TIMEOUT_MS
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise BadRequest("`timeout` must be a positive number of milliseconds")
    return float(min(raw / 1000.0, ceiling))


class Functions:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security

    async def call(self, request: Request) -> bytes:
        core, params = self.core, request.params
        project = self.project(params["project"])
        service = subjects.check_name("service", params["service"])
        func = subjects.check_name("function", params["func"])
        body = await request.json(core.settings.max_body_bytes)
        timeout = call_timeout(body.get("timeout"), core.settings.max_function_timeout)
        result = await self.invoke(project, service, func, body.get("params"), request.bearer_token(), timeout=timeout)
        return orjson.dumps({"result": result})

    def project(self, project_id: str) -> ProjectConfig:
        """The project, if its functions module is enabled (404 otherwise)."""
        project = self.core.project(project_id)
        if not project.functions.enabled:
            raise NotFound("the functions module is not enabled for this project")
        return project

    async def invoke(self, project: ProjectConfig, service: str, func: str, params: Any, token: str | None, *,
                     timeout: float) -> Any:
        """A call whatever the transport (HTTP here, gRPC): the function rule, then one instance of the service.
        `service` and `func` are checked names; `timeout` is in seconds, already capped."""
        claims = self.security.claims(project, token)
        args = await self.security.function(project, service, func, params, claims, token)
        return await self.core.call_function(project.id, service, func, args, claims, timeout=timeout)

    async def services(self, request: Request) -> dict[str, Any]:
        """Services of the project with their functions and live instances (NATS micro discovery).

        For admins (Mission Control), or anyone on the no-config development server: it tells what runs."""
        project = self.core.project(subjects.check_name("project", request.params["project"]))
        if not self.core.config.is_dev_default:
            self.security.admin(request.bearer_token())
        return {"services": await list_services(self.core.nc, project.id)}
