"""Evaluate a Space Cloud security rule against a request (spec §5). Deny by default.

Rule names map to handlers through one table (``HANDLERS``); anything not in it is refused.
User strings are never evaluated as code: variables go through ``variables.parse``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from gateway.rules.actions import force_rule, func_rule, protected_rule, query_rule, remove_rule
from gateway.rules.frame import (
    DENIED,
    INCORRECT_TYPE,
    INVALID_RULE,
    NO_MATCH,
    NO_RULE,
    NOT_AUTHENTICATED,
    UNKNOWN_RULE,
    UNRESOLVED,
    Frame,
    Handler,
    Outcome,
    RuleContext,
    RuleError,
)
from gateway.rules.match import OPS, Mismatch, compare
from gateway.rules.variables import MISSING, VariableSyntaxError, operand

__all__ = ["HANDLERS", "Decision", "RuleContext", "evaluate"]


@dataclass(frozen=True)
class Decision:
    """The verdict on one request.

    ``status`` is 200 when allowed, 401 when there is no rule or no valid auth, 403 when a rule
    said no. ``explain`` lists the rules that decided, as paths like ``and[1].match(...)``.
    """

    allowed: bool
    status: int
    message: str
    explain: list[str] = field(default_factory=list)


async def _allow(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    return frame.passed(rule)


async def _deny(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    return frame.failed(rule, DENIED)


async def _authenticated(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    return frame.passed(rule) if valid_auth(args.get("auth")) else frame.failed(rule, NOT_AUTHENTICATED)


async def _match(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    kind, op = rule.get("type"), rule.get("eval")
    if not isinstance(kind, str) or kind not in OPS:
        raise RuleError(f"{INVALID_RULE}: unknown match type {kind!r}", frame.here(rule))
    if not isinstance(op, str) or op not in OPS[kind]:
        raise RuleError(f"{INVALID_RULE}: eval {op!r} is not supported for type {kind}", frame.here(rule))
    if "f1" not in rule or "f2" not in rule:
        raise RuleError(f"{INVALID_RULE}: match needs f1 and f2", frame.here(rule))
    try:
        f1, f2 = operand(rule["f1"], args), operand(rule["f2"], args)
    except VariableSyntaxError as exc:
        raise RuleError(f"{INVALID_RULE}: {exc}", frame.here(rule)) from exc
    if f1 is MISSING or f2 is MISSING:
        return frame.failed(rule, UNRESOLVED)
    try:
        ok = compare(kind, op, f1, f2)
    except Mismatch:
        return frame.failed(rule, INCORRECT_TYPE)
    return frame.passed(rule) if ok else frame.failed(rule, NO_MATCH)


def _clauses(rule: dict[str, Any], frame: Frame) -> list[Any]:
    clauses = rule.get("clauses")
    if not isinstance(clauses, list) or not clauses:
        message = f"{INVALID_RULE}: '{rule.get('rule')}' needs a non-empty 'clauses' list"
        raise RuleError(message, frame.here(rule))
    return clauses


async def _and(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    explain: list[str] = []
    for index, clause in enumerate(_clauses(rule, frame)):
        outcome = await frame.run(clause, args, frame.child("and", index))
        if not outcome.ok:
            return outcome
        explain.extend(outcome.explain)
    return Outcome(True, "", tuple(explain))


def mutates(rule: Any, budget: int = 64) -> bool:
    """Could evaluating ``rule`` change args (does it contain force/remove)? Too deep = yes."""
    if budget <= 0:
        return True
    if not isinstance(rule, dict):
        return False
    if rule.get("rule") in ("force", "remove"):
        return True
    clauses = rule.get("clauses")
    return isinstance(clauses, list) and any(mutates(c, budget - 1) for c in clauses)


async def _or(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    # Each clause runs on its own copy of args when it may mutate them, and the copy is kept only
    # if the clause passes: a failed clause leaves no forced/removed fields behind.
    explain: list[str] = []
    last = Outcome(False, NO_MATCH)
    for index, clause in enumerate(_clauses(rule, frame)):
        trial = copy.deepcopy(args) if mutates(clause) else args
        outcome = await frame.run(clause, trial, frame.child("or", index))
        if outcome.ok:
            if trial is not args:
                args.clear()
                args.update(trial)
            return outcome
        explain.extend(outcome.explain)
        last = outcome
    return Outcome(False, last.message, tuple(explain))


HANDLERS: dict[str, Handler] = {
    "allow": _allow,
    "deny": _deny,
    "authenticated": _authenticated,
    "match": _match,
    "and": _and,
    "or": _or,
    "query": query_rule,
    "func": func_rule,
    "force": force_rule,
    "remove": remove_rule,
    "protected": protected_rule,
}


def valid_auth(auth: Any) -> bool:
    """Claims of a verified token: a non-empty dict (an empty one is treated as no token)."""
    return isinstance(auth, dict) and len(auth) > 0


async def _run(rule: Any, args: dict[str, Any], frame: Frame) -> Outcome:
    if frame.depth > frame.max_depth:
        raise RuleError(f"Auth: Rule is nested deeper than {frame.max_depth} levels", frame.prefix + "...")
    if not isinstance(rule, dict):
        raise RuleError(f"{INVALID_RULE}: a rule must be an object", frame.prefix + type(rule).__name__)
    name = rule.get("rule")
    handler = HANDLERS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise RuleError(f"{UNKNOWN_RULE} {name!r}", frame.prefix + str(name))
    return await handler(rule, args, frame)


async def evaluate(
    rule: dict[str, Any] | None, args: dict[str, Any], ctx: RuleContext, *, max_depth: int = 16
) -> Decision:
    """Decide whether the request described by ``args`` may proceed under ``rule``.

    ``args`` is the Space Cloud state (``auth``, ``token``, ``op``, ``find``/``doc``/...). ``force``
    and ``remove`` rules mutate it in place; the caller then uses the mutated request.
    """
    if rule is None:
        return Decision(False, 401, NO_RULE, ["(no rule)"])
    if isinstance(rule, dict) and rule.get("rule") == "allow":
        return Decision(True, 200, "", ["allow"])
    if not valid_auth(args.get("auth")):
        return Decision(False, 401, NOT_AUTHENTICATED, ["(token)"])
    frame = Frame(ctx, "", 0, max_depth, _run)
    try:
        outcome = await _run(rule, args, frame)
    except RuleError as exc:
        return Decision(False, 403, exc.message, [exc.where])
    except RecursionError:  # absurdly nested request data (copy / operator scan): fail closed
        return Decision(False, 403, "Auth: The request is nested too deeply", ["(request)"])
    if outcome.ok:
        return Decision(True, 200, "", list(outcome.explain))
    return Decision(False, 403, outcome.message, list(outcome.explain))
