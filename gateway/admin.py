"""Admin login and the config API (`/v1/api/config/...`). `--dev` relaxes the admin check, as in Space Cloud.

`Admin` is also what the other admin modules (Mission Control's data, users and rules views:
`gateway/admin_data.py`, `admin_users.py`, `admin_rules.py`) share: the admin check (`check`, which
returns the admin's name for the log), the project of a `{project}` path, the body, and the one
config write-back (`edit_project` / `apply`).
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import yaml

from common.errors import BadRequest, NotFound, Unauthorized
from gateway import tokens
from gateway.config import ConfigError, ProjectConfig, parse
from gateway.core import Core
from gateway.http import Request
from gateway.passwords import FailedSignIns
from gateway.security import Security

log = logging.getLogger("space_cloud.admin")


class Admin:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self.failures = FailedSignIns()

    def login(self, body: dict[str, Any], *, client: str = "") -> dict[str, Any]:
        """Back-off after failures is per (client, user): nobody can lock the admin out from elsewhere."""
        user, password = body.get("user"), body.get("pass")
        if not isinstance(user, str) or not isinstance(password, str):
            raise BadRequest("`user` and `pass` must be strings")
        admin = self.core.config.admin
        if not admin.password:
            raise Unauthorized("admin login is disabled: set admin.users[0].pass (or ADMIN_PASS)")
        self.failures.check(user, client)
        ok_user = hmac.compare_digest(user.encode(), admin.user.encode())
        ok_pass = hmac.compare_digest(password.encode(), admin.password.encode())
        if not (ok_user and ok_pass):
            self.failures.failed(user, client)
            raise Unauthorized("Invalid credentials provided")
        self.failures.succeeded(user, client)
        token = tokens.issue_admin(user, secret=self.security.admin_secret)
        return {"token": token, "projects": list(self.core.config.projects)}

    def check(self, request: Request) -> str:
        """The admin check every admin handler starts with (401 without a valid admin token, unless `--dev`).
        Returns the admin's name, which admin actions are logged with."""
        return self.security.admin(request.bearer_token())

    def project(self, request: Request) -> ProjectConfig:
        """The project of the `{project}` path parameter (404 when it is not served)."""
        return self.core.project(request.params["project"])

    async def body(self, request: Request) -> dict[str, Any]:
        return await request.json(self.core.settings.max_body_bytes)

    def edit_project(self, project_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Change one project of the raw config in place (`change` gets a copy of it), then validate, apply
        and write back the whole config; a refused change (BadRequest from `change` or from validation)
        leaves everything as it was."""
        raw = copy.deepcopy(self.core.config.raw)
        projects = raw.get("projects")
        found: dict[str, Any] | None = None
        if isinstance(projects, list):
            found = next((p for p in projects if isinstance(p, dict) and p.get("id") == project_id), None)
        elif isinstance(projects, dict) and isinstance(projects.get(project_id), dict):
            found = projects[project_id]  # the v0.9 shape: a map keyed by id
        if found is None:
            raise NotFound(f"project {project_id!r} not found")
        change(found)
        self.apply(raw)

    def apply(self, raw: dict[str, Any]) -> None:
        """Validate the whole config, swap it in, and write it back to the file it came from."""
        try:
            new = parse(raw, base=self.core.config.path.parent if self.core.config.path else None)
        except ConfigError as exc:
            raise BadRequest(f"invalid config: {exc}") from None
        new.path = self.core.config.path
        self.core.apply_config(new)
        path = new.path
        if path is not None:
            text = json.dumps(raw, indent=2) if path.suffix == ".json" else yaml.safe_dump(raw, sort_keys=False)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
            log.info("config written back to %s", path)

    def upsert_project(self, project: dict[str, Any]) -> None:
        raw = copy.deepcopy(self.core.config.raw)
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
        raw = copy.deepcopy(self.core.config.raw)
        projects = [p for p in raw.get("projects") or [] if isinstance(p, dict) and p.get("id") != project_id]
        if len(projects) == len(raw.get("projects") or []):
            raise NotFound(f"project {project_id!r} not found")
        raw["projects"] = projects
        self.apply(raw)


    # -- HTTP routes (`/v1/api/config/...`) ----------------------------------------------------

    async def http_login(self, request: Request) -> dict[str, Any]:
        return self.login(await request.json(self.core.settings.max_body_bytes), client=request.client)

    async def http_projects(self, request: Request) -> dict[str, Any]:
        self.check(request)
        return {"projects": self.core.config.raw.get("projects") or []}

    async def http_set_project(self, request: Request) -> dict[str, Any]:
        self.check(request)
        body = await request.json(self.core.settings.max_body_bytes)
        project = body.get("project", body)
        if not isinstance(project, dict) or not isinstance(project.get("id"), str):
            raise BadRequest("send a project config object with an `id`")
        self.upsert_project(project)
        return {}

    async def http_delete_project(self, request: Request) -> dict[str, Any]:
        self.check(request)
        self.delete_project(request.params["project"])
        return {}
