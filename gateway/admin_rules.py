"""Mission Control's rules views, for admins (`/v1/api/config/projects/<project>/...`).

- `PUT|DELETE rules/crud/<alias>/<col>/<op>` and `PUT|DELETE rules/functions/<service>/<func>` `{rule}`:
  set or remove one rule, checked by `gateway.rules.validate_rule` first, then saved through the config
  write-back (`Admin.edit_project`), so it applies at once and lands in the file. Listing a collection (or
  a service) for the first time copies `default`'s rules for its other operations, so they keep working
  as before (Space Cloud never falls back to `default` for a listed one).
- `POST rules/validate` `{rule}`: the problems of a draft rule (an empty list when it is well formed).
- `POST playground`: would this request, by this caller, be allowed, and why: the engine's decision and
  its explain steps, without running the request (see `gateway.admin_playground`).
- `POST functions/<service>/<func>` `{params, as, timeout}`: call a function as a chosen caller, through
  its rule, and see the result (or the error) and how long it took.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from adapters.names import check_collection
from common.errors import BadRequest, NotFound, SpaceCloudError
from gateway.admin import Admin
from gateway.admin_playground import Playground, caller
from gateway.dbrequests import OPS
from gateway.http import Request
from gateway.rules import validate_rule
from mesh import subjects

log = logging.getLogger("space_cloud.admin")

DEFAULT = "default"
CALL_TIMEOUT_MS = 5000


def call_timeout(raw: Any, ceiling: float) -> float:
    """Seconds a tried call may take: `timeout` in ms (default 5000), capped like the API's."""
    if raw is None:
        raw = CALL_TIMEOUT_MS
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        raise BadRequest("`timeout` must be a positive number of milliseconds")
    return float(min(raw / 1000.0, ceiling))


def _rule(body: dict[str, Any], where: str) -> dict[str, Any]:
    rule = body.get("rule")
    if not isinstance(rule, dict):
        raise BadRequest("send {\"rule\": {...}} (DELETE removes a rule)")
    problems = validate_rule(rule, where)
    if problems:
        raise BadRequest("invalid rule:\n  " + "\n  ".join(problems))
    return rule


def _map(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """`parent[key]`, a mapping (created when absent); a non-mapping there is a 400."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}.{key} is not a mapping: fix it in the config editor")
    return value


class AdminRules:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.core = admin.core
        self.playground = Playground(admin.core, admin.security)

    # -- CRUD rules -----------------------------------------------------------------------------------

    def _crud_place(self, request: Request) -> tuple[str, str, str, str]:
        project = self.admin.project(request)
        p = request.params
        alias, col, op = p["alias"], p["col"], p["op"]
        if alias not in project.crud:
            raise NotFound(f"database {alias!r} is not configured (and enabled) for project {project.id!r}")
        if col != DEFAULT:
            check_collection(col)
        if op not in OPS:
            raise BadRequest(f"unknown operation {op!r}: use one of {', '.join(OPS)}")
        return project.id, alias, col, op

    async def http_put_crud(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project_id, alias, col, op = self._crud_place(request)
        where = f"modules.crud.{alias}.collections.{col}.rules.{op}"
        rule = _rule(await self.admin.body(request), where)
        copied: list[str] = []

        def change(raw: dict[str, Any]) -> None:
            modules = _map(raw, "modules", "project")
            db = _map(_map(modules, "crud", "modules"), alias, "modules.crud")
            collections = _map(db, "collections", f"modules.crud.{alias}")
            if col not in collections:
                fallback = (collections.get(DEFAULT) or {}).get("rules") if col != DEFAULT else None
                collections[col] = {"rules": copy.deepcopy(fallback) if isinstance(fallback, dict) else {}}
                copied.extend(k for k in collections[col]["rules"] if k != op)
            entry = collections[col] if collections[col] is not None else {}
            collections[col] = entry
            _map(entry, "rules", f"modules.crud.{alias}.collections.{col}")[op] = rule

        self.admin.edit_project(project_id, change)
        log.info("admin %s: set the %s rule of %s/%s/%s to %s", name, op, project_id, alias, col, rule.get("rule"))
        return {"saved": where, "copiedFromDefault": copied}

    async def http_delete_crud(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project_id, alias, col, op = self._crud_place(request)

        def change(raw: dict[str, Any]) -> None:
            try:
                rules = raw["modules"]["crud"][alias]["collections"][col]["rules"]
                del rules[op]
            except (KeyError, TypeError):
                raise NotFound(f"no {op} rule on {alias}/{col}") from None

        self.admin.edit_project(project_id, change)
        log.info("admin %s: removed the %s rule of %s/%s/%s", name, op, project_id, alias, col)
        return {}

    # -- function rules -------------------------------------------------------------------------------

    def _function_place(self, request: Request) -> tuple[str, str, str]:
        project = self.admin.project(request)
        service, func = request.params["service"], request.params["func"]
        for kind, value in (("service", service), ("function", func)):
            if value != DEFAULT:
                subjects.check_name(kind, value)
        return project.id, service, func

    async def http_put_function(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project_id, service, func = self._function_place(request)
        rule = _rule(await self.admin.body(request), f"modules.functions.services.{service}.functions.{func}.rule")
        copied: list[str] = []

        def change(raw: dict[str, Any]) -> None:
            functions = _map(_map(raw, "modules", "project"), "functions", "modules")
            if "rules" in functions and "services" not in functions:  # the v0.9/10 shape stays as it is
                _map(_map(functions, "rules", "modules.functions"), service, "modules.functions.rules")[func] = rule
                return
            services = _map(functions, "services", "modules.functions")
            if service not in services:
                fallback = services.get(DEFAULT) if service != DEFAULT else None
                stub: dict[str, Any] = {"functions": {}}
                if isinstance(fallback, dict):
                    default_fn = (fallback.get("functions") or {}).get(DEFAULT)
                    if isinstance(default_fn, dict) and func != DEFAULT:
                        stub["functions"][DEFAULT] = copy.deepcopy(default_fn)
                        copied.append("functions.default")
                    if isinstance(fallback.get("register"), dict):
                        stub["register"] = copy.deepcopy(fallback["register"])
                        copied.append("register")
                services[service] = stub
            spec = _map(services, service, "modules.functions.services")
            _map(_map(spec, "functions", f"services.{service}"), func, f"services.{service}.functions")["rule"] = rule

        self.admin.edit_project(project_id, change)
        log.info("admin %s: set the rule of function %s.%s in %s to %s", name, service, func, project_id,
                 rule.get("rule"))
        return {"saved": f"{service}.{func}", "copiedFromDefault": copied}

    async def http_delete_function(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project_id, service, func = self._function_place(request)

        def change(raw: dict[str, Any]) -> None:
            functions = (raw.get("modules") or {}).get("functions") or {}
            try:
                if "services" in functions:
                    del functions["services"][service]["functions"][func]["rule"]
                else:
                    del functions["rules"][service][func]
            except (KeyError, TypeError):
                raise NotFound(f"no rule for function {service}.{func}") from None

        self.admin.edit_project(project_id, change)
        log.info("admin %s: removed the rule of function %s.%s in %s", name, service, func, project_id)
        return {}

    # -- checking and trying --------------------------------------------------------------------------

    async def http_validate(self, request: Request) -> dict[str, Any]:
        self.admin.check(request)
        self.admin.project(request)
        body = await self.admin.body(request)
        if "rule" not in body:
            raise BadRequest("send {\"rule\": ...}")
        return {"problems": validate_rule(body["rule"], "rule") if body["rule"] is not None else []}

    async def http_playground(self, request: Request) -> dict[str, Any]:
        self.admin.check(request)
        project = self.admin.project(request)
        return await self.playground.run(project, await self.admin.body(request))

    async def http_call(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project = self.admin.project(request)
        if not project.functions.enabled:
            raise NotFound("the functions module is not enabled for this project")
        service = subjects.check_name("service", request.params["service"])
        func = subjects.check_name("function", request.params["func"])
        body = await self.admin.body(request)
        timeout = call_timeout(body.get("timeout"), self.core.settings.max_function_timeout)
        who = await caller(self.core, self.admin.security, project, body.get("as"))
        log.info("admin %s: calls %s.%s in %s as %s", name, service, func, project.id, who.label)
        start = time.perf_counter()
        try:
            if who.error is not None:
                raise who.error
            params = await self.admin.security.function(project, service, func, body.get("params"), who.claims,
                                                        who.token)
            result = await self.core.call_function(project.id, service, func, params, who.claims, timeout=timeout)
        except SpaceCloudError as exc:
            return {"ok": False, "status": exc.status, "error": exc.message,
                    "ms": round((time.perf_counter() - start) * 1000, 2)}
        return {"ok": True, "status": 200, "result": result, "ms": round((time.perf_counter() - start) * 1000, 2)}
