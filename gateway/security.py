"""The one security path: every decision (CRUD, function call, service registration, live-query read) is made here.

Tokens are verified by `gateway.tokens`, rules found by the typed config (`db.rule`, `functions.rule`),
and evaluated by the pure engine in `gateway.rules` with I/O injected through `CoreRuleContext`.
Transports (HTTP, WebSocket, gRPC) and features call these methods and never evaluate rules themselves.
"""

from __future__ import annotations

import copy
import logging
import secrets
from typing import Any

import orjson

from adapters.query import validate_find
from adapters.updates import apply_update, overlaps, upsert_doc, written_paths
from common.errors import Conflict, Forbidden, NotFound, Unauthorized
from gateway import tokens
from gateway.config import USER_FIELDS, USERS, DbConfig, ProjectConfig
from gateway.core import Core
from gateway.rules import NO_RULE, Decision, evaluate
from mesh.discovery import list_services
from mesh.messages import Auth, DbRequest

log = logging.getLogger("space_cloud.rules")

FUNCTION_RULE_TIMEOUT = 5.0
"""Seconds a `func` rule's service may take to answer."""
SOCKET_KINDS = ("websocket", "grpc")
"""How services registered over a client connection describe themselves in discovery (`kind`)."""
REGISTER_LOOKUP = 0.2
"""Seconds a registration waits for discovery answers (who already serves the name)."""
HIDDEN = {USERS: ("pass",)}
"""Fields never sent to a client, whatever the rules say (hashes stored by earlier versions in `users`)."""


def redact(col: str, value: Any) -> Any:
    """`value` (a document or a list of them) without the fields of `col` that never leave the server."""
    hidden = HIDDEN.get(col)
    if not hidden:
        return value
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in hidden}
    if isinstance(value, list):
        return [redact(col, v) for v in value]
    return value


def _mentions(value: Any, name: str) -> bool:
    """Does a pipeline (or any JSON value) name the field `name` (as a `$name` path, a key, or a value)?"""
    if isinstance(value, str):
        return value == name or value.lstrip("$").split(".")[0] == name
    if isinstance(value, dict):
        return any(_mentions(k, name) or _mentions(v, name) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions(v, name) for v in value)
    return False


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


def request_args(kind: str, req: DbRequest, claims: Auth, token: str | None) -> dict[str, Any]:
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
        self.admin_secret = core.config.admin.secret or secrets.token_urlsafe(32)
        """Signs admin sessions; without a configured one, sessions last as long as this process."""
        self.disabled: set[tuple[str, str]] = set()
        """(project, user id) of users an admin disabled: their tokens are refused. Kept current on every
        gateway by `gateway.admin_users.DisabledUsers` (from the `users` collections and their change events)."""

    def admin(self, token: str | None) -> str:
        """Is this an admin's request? (a valid admin session token, or `--dev`); 401 otherwise.
        Returns the admin's name (what admin actions are logged with); `dev` under `--dev`."""
        if self.core.dev:
            return "dev"
        return str(tokens.verify_admin(token, secret=self.admin_secret).get("id") or "admin")

    def claims(self, project: ProjectConfig, token: str | None) -> Auth:
        """Claims of the caller's token; None without one; a present but invalid token (or one of a
        disabled user) is a 401."""
        if not token:
            return None
        claims = tokens.verify(token, secret=project.secret, project=project.id,
                               require_exp=not project.auth.allow_tokens_without_expiry)
        if self.disabled and (project.id, str(claims.get("id"))) in self.disabled:
            raise Unauthorized(tokens.INVALID)
        return claims

    async def _decide(self, project: ProjectConfig, rule: dict[str, Any] | None, args: dict[str, Any]) -> Decision:
        return await evaluate(rule, args, CoreRuleContext(self.core, project.id))

    def _deny(self, decision: Decision, where: str, no_rule_status: int, message: str | None = None) -> None:
        log.debug("denied %s: %s (%s)", where, decision.message, " > ".join(decision.explain))
        self.core.metrics.denied(where.split(" ", 1)[0])  # the operation: read, create, function, register, ...
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

    @staticmethod
    def users_guard(project: ProjectConfig, col: str, kind: str, req: DbRequest) -> None:
        """What no rule can allow on the `users` of email auth: creating users outside sign-up, writing the
        fields sign-up and edit_profile own, and reading a password hash."""
        if col != USERS or not project.auth.email_enabled:
            return
        if kind == "create":
            raise Forbidden("users are created by sign-up (/auth/<db>/email/signup), not through CRUD")
        if kind == "update" and req.update is not None:
            for path in written_paths(req.update):
                for field in USER_FIELDS:
                    if overlaps(path, field):
                        raise Forbidden(f"`{field}` of a user changes only through edit_profile")
        hidden = HIDDEN[USERS]
        if (kind == "aggr" and any(_mentions(req.pipe, f) for f in hidden)) or \
                (kind == "read" and req.options.get("distinct") in hidden):
            raise Forbidden("a password hash never leaves the server")

    async def _upsert_creates(self, project: ProjectConfig, db: DbConfig, col: str, req: DbRequest,
                              claims: Auth, token: str | None) -> None:
        """An upsert may insert: the document it would insert must pass the create rule too."""
        doc = apply_update(upsert_doc(validate_find(req.find)), req.update or {})
        args = {"op": "one", "auth": claims, "token": token, "doc": copy.deepcopy(doc)}
        await self._authorize(project, db.rule(col, "create"), args, where=f"upsert (create) on {db.alias}/{col}",
                              no_rule_status=401)

    async def crud(self, project: ProjectConfig, db: DbConfig, col: str, kind: str, req: DbRequest,
                   claims: Auth, token: str | None, *, profile_edit: bool = False) -> DbRequest:
        """CRUD rules (collection, then `default`; no rule = deny, 401 as Space Cloud). Returns the request
        as the rules left it (`force`/`remove` change it); `create` is decided per document, an upsert by
        the update rule and (for what it may insert) the create rule. `profile_edit`: the users feature's
        own edit of the fields it owns."""
        if not profile_edit:
            self.users_guard(project, col, kind, req)
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
        args = request_args(kind, req, claims, token)
        await self._authorize(project, rule, args, where=where, no_rule_status=401)
        if kind == "update" and req.op == "upsert":
            upsert = DbRequest(col=req.col, op=req.op, find=args.get("find") or {}, update=args.get("update") or {})
            await self._upsert_creates(project, db, col, upsert, claims, token)
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

    async def register(self, project: ProjectConfig, service: str, claims: Auth, token: str | None) -> str:
        """May this caller register `service` over a WebSocket or gRPC stream? Returns the owner to record.

        A service name is owned: the register rule decides (a listed service's own, never `default`'s);
        a name that `func` rules ask is never registered this way; nor one that has instances of another
        kind (Python services) or registered by another owner, so a socket can never join their queue
        group and answer their callers."""
        if service in project.rule_services():
            raise Forbidden(f"service {service!r} answers func rules: only trusted services may run it")
        args = {"auth": claims, "token": token, "service": service}
        decision = await self._decide(project, project.functions.register_rule(service), args)
        if not decision.allowed:
            self._deny(decision, f"register {service}", 403,
                       f"registering service {service!r} is not allowed: {decision.message}"
                       f" (rule: modules.functions.services.{service}.register)")
        owner = str(claims.get("id")) if claims and claims.get("id") is not None else "-"
        for entry in await list_services(self.core.nc, project.id, window=REGISTER_LOOKUP):
            if entry["name"] != service:
                continue
            for instance in entry["instances"]:
                if instance.get("kind") not in SOCKET_KINDS or instance.get("owner") != owner:
                    raise Conflict(f"service {service!r} is already served by other instances: a name is owned "
                                   f"by whoever runs it first")
        return owner

    def live_read_open(self, project_id: str, alias: str, col: str) -> bool:
        """Whether the collection's read rule, as configured now, lets everyone read every document (`allow`):
        a fan-out then needs no decision per subscriber."""
        project = self.core.config.project(project_id)
        db = project.crud.get(alias) if project is not None else None
        rule = db.rule(col, "read") if db is not None else None
        return rule is not None and rule.get("rule") == "allow"

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
