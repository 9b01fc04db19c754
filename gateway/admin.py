"""Admin login and the config API (`/v1/api/config/...`). `--dev` relaxes the admin check, as in Space Cloud."""

from __future__ import annotations

import copy
import hmac
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import jwt
import yaml
from fastapi import FastAPI, Request

from common.errors import BadRequest, NotFound, Unauthorized
from gateway.config import ConfigError, parse
from gateway.passwords import FailedSignIns
from gateway.users import json_body

if TYPE_CHECKING:
    from gateway.server import Gateway

log = logging.getLogger("space_cloud.admin")
ADMIN_TTL = 12 * 3600


class Admin:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._secret = gw.config.admin.secret or secrets.token_urlsafe(32)
        self.failures = FailedSignIns()

    def login(self, body: dict[str, Any]) -> dict[str, Any]:
        user, password = body.get("user"), body.get("pass")
        if not isinstance(user, str) or not isinstance(password, str):
            raise BadRequest("`user` and `pass` must be strings")
        admin = self.gw.config.admin
        if not admin.password:
            raise Unauthorized("admin login is disabled: set admin.users[0].pass (or ADMIN_PASS)")
        self.failures.check(user)
        ok_user = hmac.compare_digest(user.encode(), admin.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), admin.password.encode())
        if not (ok_user and ok_pass):
            self.failures.failed(user)
            raise Unauthorized("Invalid credentials provided")
        self.failures.succeeded(user)
        now = int(time.time())
        token = jwt.encode({"id": user, "role": "admin", "iat": now, "exp": now + ADMIN_TTL}, self._secret,
                           algorithm="HS256")
        return {"token": token, "projects": list(self.gw.config.projects)}

    def check(self, request: Request) -> None:
        if self.gw.settings.dev:
            return
        value = request.headers.get("authorization", "")
        token = value[7:].strip() if value[:7].lower() == "bearer " else value.strip()
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            raise Unauthorized("admin token required: log in at /v1/api/config/login") from None
        if claims.get("role") != "admin":
            raise Unauthorized("admin token required: log in at /v1/api/config/login")

    def apply(self, raw: dict[str, Any]) -> None:
        """Validate the whole config, swap it in, and write it back to the file it came from."""
        try:
            new = parse(raw, base=self.gw.config.path.parent if self.gw.config.path else None)
        except ConfigError as exc:
            raise BadRequest(f"invalid config: {exc}") from None
        new.path = self.gw.config.path
        self.gw.apply_config(new)
        path = new.path
        if path is not None:
            text = json.dumps(raw, indent=2) if path.suffix == ".json" else yaml.safe_dump(raw, sort_keys=False)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            log.info("config written back to %s", path)

    def upsert_project(self, project: dict[str, Any]) -> None:
        raw = copy.deepcopy(self.gw.config.raw)
        projects = list(raw.get("projects") or [])
        for i, existing in enumerate(projects):
            if isinstance(existing, dict) and existing.get("id") == project.get("id"):
                projects[i] = project  # in place: error messages keep pointing at the same index
                break
        else:
            projects.append(project)
        raw["projects"] = projects
        self.apply(raw)

    def delete_project(self, project_id: str) -> None:
        raw = copy.deepcopy(self.gw.config.raw)
        projects = [p for p in raw.get("projects") or [] if isinstance(p, dict) and p.get("id") != project_id]
        if len(projects) == len(raw.get("projects") or []):
            raise NotFound(f"project {project_id!r} not found")
        raw["projects"] = projects
        self.apply(raw)


def add_routes(app: FastAPI, gw: Gateway) -> None:
    admin = Admin(gw)
    limit = gw.config.max_body_bytes

    @app.post("/v1/api/config/login")
    async def login(request: Request) -> dict[str, Any]:
        return admin.login(await json_body(request, limit))

    @app.get("/v1/api/config/projects")
    async def get_projects(request: Request) -> dict[str, Any]:
        admin.check(request)
        return {"projects": gw.config.raw.get("projects") or []}

    @app.post("/v1/api/config/projects")
    async def set_project(request: Request) -> dict[str, Any]:
        admin.check(request)
        body = await json_body(request, limit)
        project = body.get("project", body)
        if not isinstance(project, dict) or not isinstance(project.get("id"), str):
            raise BadRequest("send a project config object with an `id`")
        admin.upsert_project(project)
        return {}

    @app.delete("/v1/api/config/{project}")
    async def delete_project(project: str, request: Request) -> dict[str, Any]:
        admin.check(request)
        admin.delete_project(project)
        return {}
