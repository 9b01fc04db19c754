"""Security decisions for the gateway: tokens + the rules engine, the same on HTTP and WebSocket."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from common.errors import Forbidden, NotFound, SpaceCloudError, Unauthorized
from gateway import tokens
from gateway.config import ProjectConfig
from gateway.rules import Decision, evaluate, function_rule
from gateway.rules import crud_rule as find_crud_rule

if TYPE_CHECKING:
    from gateway.server import Gateway

log = logging.getLogger("space_cloud.rules")


class RuleContext:
    """What rules may ask of the rest of the system: a read through the worker, a mesh call."""

    def __init__(self, gw: Gateway, project: str) -> None:
        self._gw = gw
        self._project = project

    async def query(self, db: str, col: str, find: dict[str, Any]) -> bool:
        try:
            await self._gw.db_request(self._project, db, "read", {"col": col, "op": "one", "find": find})
        except NotFound:
            return False
        return True

    async def call(self, service: str, func: str, params: Any, auth: dict[str, Any] | None) -> Any:
        return await self._gw.call_function(self._project, service, func, params, auth, timeout=5.0)


def claims_for(project: ProjectConfig, token: str | None) -> dict[str, Any] | None:
    """Claims of the caller's token; None without one; a present but invalid token is a 401."""
    if not token:
        return None
    return tokens.verify(token, secret=project.secret, project=project.id)


def _raise(decision: Decision, where: str, no_rule_status: int) -> None:
    log.debug("denied %s: %s (%s)", where, decision.message, " > ".join(decision.explain))
    status = decision.status
    if decision.message == NO_RULE:
        status = no_rule_status
    if status == 401:
        raise Unauthorized(decision.message)
    raise Forbidden(decision.message)


NO_RULE = "Auth: No rule has been provided"


async def authorize(
    gw: Gateway, project: ProjectConfig, rule: dict[str, Any] | None, args: dict[str, Any], *, where: str,
    no_rule_status: int,
) -> None:
    try:
        decision = await evaluate(rule, args, RuleContext(gw, project.id))
    except SpaceCloudError:
        raise
    if not decision.allowed:
        _raise(decision, where, no_rule_status)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("allowed %s (%s)", where, " > ".join(decision.explain))


async def authorize_function(
    gw: Gateway, project: ProjectConfig, service: str, func: str, args: dict[str, Any]
) -> None:
    """Function rules: Space Cloud's placement, no rule = deny (403)."""
    rule = function_rule(project.functions, service, func)
    await authorize(gw, project, rule, args, where=f"function {service}.{func}", no_rule_status=403)


async def authorize_crud(
    gw: Gateway, project: ProjectConfig, alias: str, col: str, op: str, args: dict[str, Any]
) -> None:
    """CRUD rules: collection then `default`, no rule = deny (401, as Space Cloud)."""
    db = project.crud[alias]
    rule = find_crud_rule({"collections": db.collections}, col, op)
    await authorize(gw, project, rule, args, where=f"{op} on {alias}/{col}", no_rule_status=401)
