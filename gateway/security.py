"""The one security path: every decision (CRUD, function call, service registration, live-query read) is made here.

Tokens are verified by `gateway.tokens`, rules found by the typed config (`db.rule`, `functions.rule`),
and evaluated by the pure engine in `gateway.rules` with I/O injected through `CoreRuleContext`.
Transports (HTTP, WebSocket, gRPC) and features call these methods and never evaluate rules themselves.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from common.errors import Forbidden, NotFound, Unauthorized
from gateway import tokens
from gateway.config import DbConfig, ProjectConfig
from gateway.core import Core
from gateway.rules import NO_RULE, Decision, evaluate
from mesh.messages import Auth, DbRequest

log = logging.getLogger("space_cloud.rules")

FUNCTION_RULE_TIMEOUT = 5.0
"""Seconds a `func` rule's service may take to answer."""


class CoreRuleContext:
    """What rules may ask of the rest of the system: a read through the worker, a mesh call."""

    def __init__(self, core: Core, project: str) -> None:
        self._core = core
        self._project = project

    async def query(self, db: str, col: str, find: dict[str, Any]) -> bool:
        try:
            await self._core.db_request(self._project, db, "read", DbRequest(col=col, op="one", find=find))
        except NotFound:
            return False
        return True

    async def call(self, service: str, func: str, params: Any, auth: Auth) -> Any:
        return await self._core.call_function(self._project, service, func, params, auth,
                                              timeout=FUNCTION_RULE_TIMEOUT)


def _request_args(kind: str, req: DbRequest, claims: Auth, token: str | None) -> dict[str, Any]:
    """The Space Cloud `args` a CRUD rule sees (everything but create's per-document `doc`)."""
    args: dict[str, Any] = {"op": req.op, "auth": claims, "token": token}
    if kind == "aggr":
        args["pipeline"] = req.pipe
    else:
        args["find"] = req.find
        if req.update is not None:
            args["update"] = req.update
    return args


class Security:
    def __init__(self, core: Core) -> None:
        self.core = core

    @staticmethod
    def claims(project: ProjectConfig, token: str | None) -> Auth:
        """Claims of the caller's token; None without one; a present but invalid token is a 401."""
        if not token:
            return None
        return tokens.verify(token, secret=project.secret, project=project.id)

    async def _decide(self, project: ProjectConfig, rule: dict[str, Any] | None, args: dict[str, Any]) -> Decision:
        return await evaluate(rule, args, CoreRuleContext(self.core, project.id))

    @staticmethod
    def _deny(decision: Decision, where: str, no_rule_status: int, message: str | None = None) -> None:
        log.debug("denied %s: %s (%s)", where, decision.message, " > ".join(decision.explain))
        status = no_rule_status if decision.message == NO_RULE else decision.status
        text = message or decision.message
        if status == 401:
            raise Unauthorized(text)
        raise Forbidden(text)

    async def _authorize(self, project: ProjectConfig, rule: dict[str, Any] | None, args: dict[str, Any], *,
                         where: str, no_rule_status: int) -> None:
        decision = await self._decide(project, rule, args)
        if not decision.allowed:
            self._deny(decision, where, no_rule_status)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("allowed %s (%s)", where, " > ".join(decision.explain))

    async def crud(self, project: ProjectConfig, db: DbConfig, col: str, kind: str, req: DbRequest,
                   claims: Auth, token: str | None) -> DbRequest:
        """CRUD rules (collection, then `default`; no rule = deny, 401 as Space Cloud). Returns the request
        as the rules left it (`force`/`remove` change it); `create` is decided per document."""
        rule = db.rule(col, kind)
        where = f"{kind} on {db.alias}/{col}"
        if kind == "create":
            many = isinstance(req.doc, list)
            checked = []
            for doc in req.doc if many else [req.doc]:
                args = {"op": req.op, "auth": claims, "token": token, "doc": doc}
                await self._authorize(project, rule, args, where=where, no_rule_status=401)
                checked.append(args["doc"])
            return DbRequest(col=req.col, op=req.op, doc=checked if many else checked[0])
        args = _request_args(kind, req, claims, token)
        await self._authorize(project, rule, args, where=where, no_rule_status=401)
        if kind == "aggr":
            return DbRequest(col=req.col, op=req.op, pipe=args.get("pipeline") or [])
        return DbRequest(col=req.col, op=req.op, find=args.get("find") or {}, doc=req.doc,
                         update=(args.get("update") or {}) if req.update is not None else None, options=req.options)

    async def function(self, project: ProjectConfig, service: str, func: str, params: Any, claims: Auth,
                       token: str | None) -> Any:
        """Function rules (Space Cloud's placement; no rule = deny, 403). Returns the params as the rules left them."""
        args: dict[str, Any] = {"auth": claims, "token": token, "params": params}
        await self._authorize(project, project.functions.rule(service, func), args,
                              where=f"function {service}.{func}", no_rule_status=403)
        return args.get("params")

    async def register(self, project: ProjectConfig, service: str, claims: Auth, token: str | None) -> None:
        """May this caller register `service` over a WebSocket? (`services.<svc>.register`, then `default`)."""
        args = {"auth": claims, "token": token, "service": service}
        decision = await self._decide(project, project.functions.register_rule(service), args)
        if not decision.allowed:
            self._deny(decision, f"register {service}", 403,
                       f"registering service {service!r} is not allowed: {decision.message}"
                       f" (rule: modules.functions.services.{service}.register)")

    async def live_read(self, project_id: str, alias: str, col: str, doc: dict[str, Any], claims: Auth,
                        token: str | None, cache: dict[str, bool] | None = None) -> bool:
        """May this subscriber see this one document? The collection's read rule *as configured now*.

        Rules that cannot depend on the document are decided once per identity (`cache`, per event)."""
        project = self.core.config.project(project_id)
        db = project.crud.get(alias) if project is not None else None
        if project is None or db is None:
            return False
        rule = db.rule(col, "read")
        if rule is None:
            return False
        kind = rule.get("rule")
        if kind == "allow":
            return True
        ident = ""
        if cache is not None and kind in ("authenticated", "deny"):
            ident = orjson.dumps(claims, option=orjson.OPT_SORT_KEYS).decode() if claims else "-"
            if ident in cache:
                return cache[ident]
        args = {"op": "one", "auth": claims, "token": token, "find": dict(doc), "doc": doc}
        allowed = (await self._decide(project, rule, args)).allowed
        if ident and cache is not None:
            cache[ident] = allowed
        return allowed
