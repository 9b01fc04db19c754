"""The FastAPI part of the gateway: everything that is not a hot path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.errors import SpaceCloudError
from gateway.http import error_response
from mesh import subjects
from mesh.discovery import list_services

if TYPE_CHECKING:
    from gateway.server import Gateway


def json_error(message: str, status: int) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")


def build_api(gw: Gateway) -> FastAPI:
    app = FastAPI(title="space-cloud", docs_url="/v1/api/docs", openapi_url="/v1/api/openapi.json", redoc_url=None)

    @app.exception_handler(SpaceCloudError)
    async def mesh_error(_request: Request, exc: SpaceCloudError) -> Response:
        status, _ = error_response(exc)
        return json_error(exc.message, status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return json_error(f"invalid request: {where}: {first.get('msg', 'invalid')}", 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        message = "not found" if exc.status_code == 404 else str(exc.detail)
        return json_error(message, exc.status_code)

    @app.get("/v1/api/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "nats": gw.nc.is_connected}

    @app.get("/v1/api/config/env")
    async def env() -> dict[str, Any]:
        return {"isProd": not gw.settings.dev}

    @app.get("/v1/api/{project}/services")
    async def services(project: str) -> dict[str, Any]:
        """Services of the project with their functions and live instances (NATS micro discovery)."""
        gw.project(subjects.check_name("project", project))
        return {"services": await list_services(gw.nc, project)}

    from gateway.admin import add_routes as add_admin_routes
    from gateway.mission_control import add_routes as add_mission_control_routes
    from gateway.static import add_routes as add_static_routes
    from gateway.users import add_routes as add_user_routes

    add_user_routes(app, gw)
    add_static_routes(app, gw)
    add_admin_routes(app, gw)
    add_mission_control_routes(app, gw)
    return app
