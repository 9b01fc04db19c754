"""What every rule handler shares: the injected context, the outcome type and the explain path."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.rules.variables import looks_like_ref

NO_RULE = "Auth: No rule has been provided"
INCORRECT_TYPE = "Auth: Incorrect rule field type"
NO_MATCH = "Auth: The two fields do not match"
NOT_AUTHENTICATED = "Auth: A valid token is required"
DENIED = "Auth: Access denied by rule"
UNRESOLVED = "Auth: A variable used by the rule is not set"
INVALID_RULE = "Auth: Invalid rule"
UNKNOWN_RULE = "Auth: Unknown rule type"


class RuleContext(Protocol):
    """Capabilities the gateway injects; the engine itself does no I/O."""

    async def query(self, db: str, col: str, find: dict[str, Any]) -> bool:
        """Read through the worker: is there at least one document matching ``find``?"""
        ...

    async def call(self, service: str, func: str, params: Any, auth: dict[str, Any] | None) -> Any:
        """Call a mesh function and return its result."""
        ...


@dataclass(frozen=True)
class Outcome:
    """Result of one rule: passed or not, why, and which rules decided (explain paths)."""

    ok: bool
    message: str = ""
    explain: tuple[str, ...] = ()


class RuleError(Exception):
    """A rule that cannot be evaluated (malformed, unknown type, too deep). Denies the request."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def show(value: Any) -> str:
    """A rule operand as written: variables bare, literals as JSON."""
    if isinstance(value, str) and looks_like_ref(value):
        return value
    return json.dumps(value, default=str)


def describe(rule: dict[str, Any]) -> str:
    """Short label for a rule, used in explain paths: ``match(args.auth.id == args.find.userId)``."""
    name = str(rule.get("rule"))
    if name == "match":
        return f"match({show(rule.get('f1'))} {rule.get('eval')} {show(rule.get('f2'))})"
    if name == "query":
        return f"query({rule.get('db')}.{rule.get('col')})"
    if name == "func":
        return f"func({rule.get('service')}.{rule.get('func')})"
    if name == "force":
        return f"force({rule.get('field')})"
    if name == "remove":
        fields = rule.get("fields")
        shown = ", ".join(map(str, fields)) if isinstance(fields, list) else show(fields)
        return f"remove({shown})"
    return name


@dataclass(frozen=True)
class Frame:
    """Where a handler runs: context, explain prefix, nesting depth, and how to evaluate children."""

    ctx: RuleContext
    prefix: str
    depth: int
    max_depth: int
    run: Callable[[Any, dict[str, Any], Frame], Awaitable[Outcome]]

    def here(self, rule: dict[str, Any]) -> str:
        return self.prefix + describe(rule)

    def passed(self, rule: dict[str, Any]) -> Outcome:
        return Outcome(True, "", (self.here(rule),))

    def failed(self, rule: dict[str, Any], message: str) -> Outcome:
        return Outcome(False, message, (self.here(rule),))

    def child(self, name: str, index: int) -> Frame:
        return Frame(self.ctx, f"{self.prefix}{name}[{index}].", self.depth + 1, self.max_depth, self.run)


Handler = Callable[[dict[str, Any], dict[str, Any], Frame], Awaitable[Outcome]]
