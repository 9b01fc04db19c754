"""Rules that reach outside or change the request: ``query``, ``func``, ``force``, ``remove``, ``protected``."""

from __future__ import annotations

import copy
from typing import Any

from adapters.updates import overlaps, written_paths
from gateway.rules.frame import INVALID_RULE, UNRESOLVED, Frame, Outcome, RuleError
from gateway.rules.variables import MISSING, Path, VariableSyntaxError, looks_like_ref, operand, parse

PROTECTED = frozenset({"auth", "token"})
QUERY_NO_DOC = "Auth: No document matched the query rule"
QUERY_FAILED = "Auth: The query rule could not be evaluated"
QUERY_OPERATOR = "Auth: A value read by the query rule contains an operator"
FUNC_NO_ACK = "Auth: The function rule did not acknowledge the request"
FUNC_FAILED = "Auth: The function rule could not be evaluated"
FORCE_FAILED = "Auth: The force rule could not set its field"
PROTECTED_FIELD = "Auth: A protected field may not change"


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def has_operator(value: Any) -> bool:
    """True if ``value`` holds, at any depth, a dict key starting with ``$``."""
    if isinstance(value, dict):
        return any((isinstance(k, str) and k.startswith("$")) or has_operator(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_operator(item) for item in value)
    return False


def _variable(text: str, args: dict[str, Any]) -> Any:
    value = operand(text, args)
    if value is MISSING:
        raise _Refused(UNRESOLVED)
    if has_operator(value):
        raise _Refused(QUERY_OPERATOR)
    return copy.deepcopy(value)


def resolve_find(find: Any, args: dict[str, Any]) -> Any:
    """Replace variable strings in a ``find`` by their values, as literal values only.

    A variable in a field position becomes ``{"$eq": value}``; under an operator (``$in``,
    ``$gt`` ...) the value is used as is. Either way a value holding ``$`` keys is refused, so
    request data can never add query operators.
    """
    if isinstance(find, dict):
        out: dict[str, Any] = {}
        for key, value in find.items():
            if looks_like_ref(value):
                resolved = _variable(value, args)
                operator_slot = isinstance(key, str) and key.startswith("$")
                out[key] = resolved if operator_slot else {"$eq": resolved}
            else:
                out[key] = resolve_find(value, args)
        return out
    if isinstance(find, list):
        return [_variable(item, args) if looks_like_ref(item) else resolve_find(item, args) for item in find]
    return find


def _text(rule: dict[str, Any], key: str, frame: Frame) -> str:
    value = rule.get(key)
    if not isinstance(value, str) or not value:
        raise RuleError(f"{INVALID_RULE}: '{key}' must be a non-empty string", frame.here(rule))
    return value


async def query_rule(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    db, col = _text(rule, "db", frame), _text(rule, "col", frame)
    find = rule.get("find")
    if not isinstance(find, dict):
        raise RuleError(f"{INVALID_RULE}: 'find' must be an object", frame.here(rule))
    try:
        resolved = resolve_find(find, args)
    except VariableSyntaxError as exc:
        raise RuleError(f"{INVALID_RULE}: {exc}", frame.here(rule)) from exc
    except _Refused as exc:
        return frame.failed(rule, exc.message)
    try:
        found = await frame.ctx.query(db, col, resolved)
    except Exception:
        return frame.failed(rule, QUERY_FAILED)
    return frame.passed(rule) if found is True else frame.failed(rule, QUERY_NO_DOC)


async def func_rule(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    service, func = _text(rule, "service", frame), _text(rule, "func", frame)
    params = {k: copy.deepcopy(v) for k, v in args.items() if k not in PROTECTED}
    auth = args.get("auth")
    claims = copy.deepcopy(auth) if isinstance(auth, dict) else None
    try:
        result = await frame.ctx.call(service, func, params, claims)
    except Exception:
        return frame.failed(rule, FUNC_FAILED)
    acked = isinstance(result, dict) and result.get("ack") is True
    return frame.passed(rule) if acked else frame.failed(rule, FUNC_NO_ACK)


def settable_path(text: Any) -> tuple[str, ...]:
    """Parse a ``force``/``remove`` target: ``args.<name>(.<name>)*``, never under args.auth/token."""
    if not isinstance(text, str) or not looks_like_ref(text):
        raise ValueError(f"field {text!r} must be a variable path starting with 'args.'")
    ref = parse(text)
    if not isinstance(ref, Path) or not ref.segments:
        raise ValueError(f"field {text!r} must name a field inside args")
    names = tuple(s for s in ref.segments if isinstance(s, str))
    if len(names) != len(ref.segments):
        raise ValueError(f"field {text!r} may only use .name segments")
    if names[0] in PROTECTED:
        raise ValueError(f"field {text!r} is under args.{names[0]}, which rules may not change")
    return names


def _target(rule: dict[str, Any], text: Any, frame: Frame) -> tuple[str, ...]:
    try:
        return settable_path(text)
    except ValueError as exc:  # VariableSyntaxError included
        raise RuleError(f"{INVALID_RULE}: {exc}", frame.here(rule)) from exc


async def force_rule(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    names = _target(rule, rule.get("field"), frame)
    if "value" not in rule:
        raise RuleError(f"{INVALID_RULE}: 'value' is missing", frame.here(rule))
    try:
        value = operand(rule["value"], args)
    except VariableSyntaxError as exc:
        raise RuleError(f"{INVALID_RULE}: {exc}", frame.here(rule)) from exc
    if value is MISSING:
        return frame.failed(rule, UNRESOLVED)
    node: Any = args
    for name in names[:-1]:
        if name not in node:
            node[name] = {}
        node = node[name]
        if not isinstance(node, dict):
            return frame.failed(rule, FORCE_FAILED)
    node[names[-1]] = copy.deepcopy(value)
    return frame.passed(rule)


async def remove_rule(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    fields = rule.get("fields")
    if not isinstance(fields, list) or not fields:
        raise RuleError(f"{INVALID_RULE}: 'fields' must be a non-empty list", frame.here(rule))
    for names in [_target(rule, text, frame) for text in fields]:
        node: Any = args
        for name in names[:-1]:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(names[-1], None)
    return frame.passed(rule)


def protected_fields(value: Any) -> list[str] | None:
    """The document paths of a ``protected`` rule (``fields: [userId, profile.role]``), or None if malformed."""
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(f, str) and f and not f.startswith(("$", "args.")) for f in value):
        return None
    return list(value)


async def protected_rule(rule: dict[str, Any], args: dict[str, Any], frame: Frame) -> Outcome:
    """``{"rule": "protected", "fields": [...]}``: an update may not write these document paths with any
    operator (``$set``, ``$inc``, ``$rename`` source or target, ``$unset``, ``$push``...), nor a path inside
    or around them (``role.x``, or ``profile`` for ``profile.role``). Passes for anything but an update."""
    fields = protected_fields(rule.get("fields"))
    if fields is None:
        raise RuleError(f"{INVALID_RULE}: 'fields' must be a non-empty list of document paths", frame.here(rule))
    update = args.get("update")
    if not isinstance(update, dict):
        return frame.passed(rule)
    for path in written_paths(update):
        for field in fields:
            if overlaps(path, field):
                return frame.failed(rule, f"{PROTECTED_FIELD}: {field}")
    return frame.passed(rule)
