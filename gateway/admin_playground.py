"""The rules playground: would this request, by this caller, be allowed, and why?

`POST /v1/api/config/projects/<project>/playground` with

    {"target": {"kind": "crud", "alias": "db", "col": "todos", "op": "read"}      # or
               {"kind": "function", "service": "todo", "func": "summary"},
     "as": {"anonymous": true} | {"user": "<id>", "alias": "db"} | {"token": "<jwt>"} | {"claims": {...}},
     "body": {"find": {...}} (the CRUD body, or {"params": ...} for a function),
     "rule": {...} (optional: a draft to try instead of the saved rule),
     "run": false}

answers `{allowed, status, message, caller, checks: [...], request}`: each check (the reserved-collection
and users guards, the rule once per created document, the create rule of an upsert) with the engine's
`Decision` (status, message, `explain` steps) and the `query`/`func` rules it met. Nothing is run: the
request never reaches a worker, and `query`/`func` rules are *not evaluated* (reported as such, and they
fail) unless `run` is true, when they make their real reads and calls. `request` is the request as the
rules left it (`force`/`remove`). A malformed body or rule is a 400, as the API would answer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from adapters.query import validate_find
from adapters.updates import apply_update, upsert_doc
from common.errors import BadRequest, Forbidden, NotFound, SpaceCloudError, Unauthorized
from gateway import dbrequests, tokens
from gateway.config import USERS, ProjectConfig
from gateway.core import Core
from gateway.rules import NO_RULE, evaluate, validate_rule
from gateway.security import CoreRuleContext, Security, request_args
from mesh import subjects
from mesh.messages import Auth, DbRequest


class NotEvaluated(Exception):
    """A `query` or `func` rule the playground did not run."""


class PlaygroundContext:
    """The engine's I/O for the playground: real reads and calls only when the admin asked (`run`)."""

    def __init__(self, real: CoreRuleContext | None) -> None:
        self.real = real
        self.steps: list[dict[str, Any]] = []

    async def query(self, db: str, col: str, find: dict[str, Any]) -> bool:
        step: dict[str, Any] = {"rule": f"query({db}.{col})", "find": find, "evaluated": self.real is not None}
        self.steps.append(step)
        if self.real is None:
            raise NotEvaluated(step["rule"])
        step["found"] = await self.real.query(db, col, find)
        return bool(step["found"])

    async def call(self, service: str, func: str, params: Any, auth: Auth) -> Any:
        step: dict[str, Any] = {"rule": f"func({service}.{func})", "evaluated": self.real is not None}
        self.steps.append(step)
        if self.real is None:
            raise NotEvaluated(step["rule"])
        step["result"] = await self.real.call(service, func, params, auth)
        return step["result"]


@dataclass
class Caller:
    label: str
    claims: Auth = None
    token: str | None = None
    error: SpaceCloudError | None = None
    """Set when every request of this caller is refused before any rule (an invalid token, a disabled user)."""


async def caller(core: Core, security: Security, project: ProjectConfig, spec: Any) -> Caller:
    """Who the request is from: anonymous, a user of the project (a token is issued for them, as at
    sign-in), a pasted token, or hand-written claims."""
    if spec is None or (isinstance(spec, dict) and spec.get("anonymous") is True):
        return Caller("anonymous")
    if not isinstance(spec, dict):
        raise BadRequest("`as` must be {anonymous: true}, {user, alias}, {token} or {claims}")
    if "token" in spec:
        token = spec["token"]
        if not isinstance(token, str) or not token.strip():
            raise BadRequest("`as.token` must be a token")
        return _verified(security, project, "the given token", token.strip())
    if "claims" in spec:
        claims = spec["claims"]
        if not isinstance(claims, dict) or not claims:
            raise BadRequest("`as.claims` must be a non-empty object")
        return Caller("hand-written claims", claims=claims)
    if "user" in spec:
        uid, alias = spec.get("user"), spec.get("alias")
        if not isinstance(uid, str) or not uid or not isinstance(alias, str):
            raise BadRequest("`as` needs `user` (an id) and `alias` (the database of its users)")
        db = dbrequests.database(project, alias)
        try:
            user = await core.db_request(project.id, db.alias, "read", DbRequest(
                col=USERS, op="one", find={db.id_field: uid}))
        except NotFound:
            raise BadRequest(f"no user with id {uid!r} in {alias}") from None
        claims = {"id": user[db.id_field], "email": user.get("email"), "role": user.get("role")}
        token = tokens.issue(claims, secret=project.secret, project=project.id, ttl=project.auth.token_ttl)
        return _verified(security, project, f"user {user.get('email') or uid}", token)
    raise BadRequest("`as` must be {anonymous: true}, {user, alias}, {token} or {claims}")


def _verified(security: Security, project: ProjectConfig, label: str, token: str) -> Caller:
    try:
        return Caller(label, claims=security.claims(project, token), token=token)
    except Unauthorized as exc:
        disabled = "" if label == "the given token" else " (a disabled user)"
        return Caller(label + disabled, token=token, error=exc)


def _check(what: str, *, status: int, message: str, explain: list[str] | None = None) -> dict[str, Any]:
    return {"what": what, "rule": None, "allowed": status == 200, "status": status, "message": message,
            "explain": explain or [], "steps": []}


class Playground:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security

    async def _decide(self, what: str, project: ProjectConfig, rule: dict[str, Any] | None, args: dict[str, Any],
                      *, run: bool, no_rule_status: int) -> dict[str, Any]:
        ctx = PlaygroundContext(CoreRuleContext(self.core, project.id) if run else None)
        decision = await evaluate(rule, args, ctx)
        status = no_rule_status if decision.message == NO_RULE else decision.status
        return {"what": what, "rule": rule, "allowed": decision.allowed, "status": status,
                "message": decision.message, "explain": decision.explain, "steps": ctx.steps}

    async def run(self, project: ProjectConfig, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("target")
        if not isinstance(target, dict) or target.get("kind") not in ("crud", "function"):
            raise BadRequest("`target` must be {kind: crud, alias, col, op} or {kind: function, service, func}")
        run = body.get("run", False)
        if not isinstance(run, bool):
            raise BadRequest("`run` must be true or false")
        request = body.get("body") or {}
        if not isinstance(request, dict):
            raise BadRequest("`body` must be an object (the request body the API would get)")
        draft = body.get("rule")
        if draft is not None:
            problems = validate_rule(draft, "rule")
            if problems:
                raise BadRequest("invalid rule:\n  " + "\n  ".join(problems))
        who = await caller(self.core, self.security, project, body.get("as"))
        if target["kind"] == "crud":
            checks, args = await self._crud(project, target, request, draft, who, run)
        else:
            checks, args = await self._function(project, target, request, draft, who, run)
        denied = next((c for c in checks if not c["allowed"]), None)
        return {
            "allowed": denied is None, "status": 200 if denied is None else denied["status"],
            "message": "" if denied is None else denied["message"],
            "caller": {"label": who.label, "claims": who.claims}, "checks": checks,
            "request": {k: v for k, v in args.items() if k not in ("auth", "token")},
        }

    async def _crud(self, project: ProjectConfig, target: dict[str, Any], request: dict[str, Any],
                    draft: dict[str, Any] | None, who: Caller, run: bool
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        alias, col, op = target.get("alias"), target.get("col"), target.get("op")
        if not isinstance(alias, str) or not isinstance(op, str) or op not in dbrequests.OPS:
            raise BadRequest(f"`target` needs `alias`, `col` and `op` ({', '.join(dbrequests.OPS)})")
        db = dbrequests.database(project, alias)
        if who.error is not None:
            return [_check("token", status=401, message=who.error.message, explain=["(token)"])], {}
        try:
            col = dbrequests.collection(col, db)
        except Forbidden as exc:
            return [_check("reserved collection", status=403, message=exc.message)], {}
        req = dbrequests.build(op, col, request, db.id_field)
        try:
            Security.users_guard(project, col, op, req)
        except Forbidden as exc:
            return [_check("users guard", status=403, message=exc.message, explain=["(users of email sign-in)"])], {}
        rule = draft if draft is not None else db.rule(col, op)
        checks: list[dict[str, Any]] = []
        if op == "create":
            docs = req.doc if isinstance(req.doc, list) else [req.doc]
            last: dict[str, Any] = {}
            for i, doc in enumerate(docs):
                last = {"op": req.op, "auth": who.claims, "token": who.token, "doc": copy.deepcopy(doc)}
                what = f"create rule (document {i + 1} of {len(docs)})" if len(docs) > 1 else "create rule"
                checks.append(await self._decide(what, project, rule, last, run=run, no_rule_status=401))
            return checks, last
        args = request_args(op, req, who.claims, who.token)
        checks.append(await self._decide(f"{op} rule", project, rule, args, run=run, no_rule_status=401))
        if op == "update" and req.op == "upsert" and checks[0]["allowed"]:
            doc = apply_update(upsert_doc(validate_find(args.get("find") or {})), args.get("update") or {})
            create = {"op": "one", "auth": who.claims, "token": who.token, "doc": doc}
            checks.append(await self._decide("create rule (what the upsert may insert)", project,
                                             db.rule(col, "create"), create, run=run, no_rule_status=401))
        return checks, args

    async def _function(self, project: ProjectConfig, target: dict[str, Any], request: dict[str, Any],
                        draft: dict[str, Any] | None, who: Caller, run: bool
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        service = subjects.check_name("service", str(target.get("service") or ""))
        func = subjects.check_name("function", str(target.get("func") or ""))
        if who.error is not None:
            return [_check("token", status=401, message=who.error.message, explain=["(token)"])], {}
        args: dict[str, Any] = {"auth": who.claims, "token": who.token, "params": request.get("params")}
        rule = draft if draft is not None else project.functions.rule(service, func)
        return [await self._decide("function rule", project, rule, args, run=run, no_rule_status=403)], args
