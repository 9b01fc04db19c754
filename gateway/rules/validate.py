"""Check rules when the config is loaded, so mistakes are reported instead of silently denying."""

from __future__ import annotations

from typing import Any

from gateway.rules.actions import protected_fields, settable_path
from gateway.rules.match import ALL_OPS, OPS, Mismatch, compare
from gateway.rules.variables import VariableSyntaxError, looks_like_ref, parse

RULE_TYPES = ("allow", "deny", "authenticated", "match", "and", "or", "query", "func", "force", "remove", "protected")


def _refs(value: Any, where: str, problems: list[str]) -> None:
    """Report every malformed variable reference inside ``value`` (any depth)."""
    if looks_like_ref(value):
        try:
            parse(value)
        except VariableSyntaxError as exc:
            problems.append(f"{where}: {exc}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refs(item, f"{where}.{key}", problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refs(item, f"{where}[{index}]", problems)


def _nonempty_str(rule: dict[str, Any], key: str, where: str, problems: list[str]) -> None:
    if not isinstance(rule.get(key), str) or not rule[key]:
        problems.append(f"{where}: '{key}' must be a non-empty string")


def _literal_type(value: Any, kind: str, where: str, problems: list[str]) -> None:
    try:
        compare(kind, "==", value, value)
    except Mismatch:
        problems.append(f"{where}: literal {value!r} is not a {kind}, so the rule can never match")


def _match(rule: dict[str, Any], where: str, problems: list[str]) -> None:
    kind, op = rule.get("type"), rule.get("eval")
    if not isinstance(kind, str) or kind not in OPS:
        problems.append(f"{where}: unknown match type {kind!r} (expected one of {', '.join(OPS)})")
    if op not in ALL_OPS:
        problems.append(f"{where}: unknown eval {op!r} (expected one of {' '.join(ALL_OPS)})")
    elif isinstance(kind, str) and kind in OPS and op not in OPS[kind]:
        problems.append(f"{where}: eval {op!r} is not supported for type {kind}")
    for key in ("f1", "f2"):
        if key not in rule:
            problems.append(f"{where}: match needs '{key}'")
        elif looks_like_ref(rule[key]):
            _refs(rule[key], f"{where}.{key}", problems)
        elif isinstance(kind, str) and kind in OPS:
            if key == "f2" and op in ("in", "notIn"):
                if not isinstance(rule[key], list):
                    problems.append(f"{where}: f2 of '{op}' must be a list or a variable")
            else:
                _literal_type(rule[key], kind, f"{where}.{key}", problems)


def _target(value: Any, where: str, problems: list[str]) -> None:
    try:
        settable_path(value)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")


def _check(rule: Any, where: str, depth: int, max_depth: int, problems: list[str]) -> None:
    if depth > max_depth:
        problems.append(f"{where}: rule is nested deeper than {max_depth} levels")
        return
    if not isinstance(rule, dict):
        problems.append(f"{where}: a rule must be an object, got {type(rule).__name__}")
        return
    name = rule.get("rule")
    if not isinstance(name, str) or name not in RULE_TYPES:
        problems.append(f"{where}: unknown rule type {name!r}")
        return
    if name == "match":
        _match(rule, where, problems)
    elif name in ("and", "or"):
        clauses = rule.get("clauses")
        if not isinstance(clauses, list) or not clauses:
            problems.append(f"{where}: '{name}' needs a non-empty 'clauses' list")
            return
        for index, clause in enumerate(clauses):
            _check(clause, f"{where}.{name}[{index}]", depth + 1, max_depth, problems)
    elif name == "query":
        _nonempty_str(rule, "db", where, problems)
        _nonempty_str(rule, "col", where, problems)
        if not isinstance(rule.get("find"), dict):
            problems.append(f"{where}: query needs a 'find' object")
        else:
            _refs(rule["find"], f"{where}.find", problems)
    elif name == "func":
        _nonempty_str(rule, "service", where, problems)
        _nonempty_str(rule, "func", where, problems)
    elif name == "force":
        _target(rule.get("field"), f"{where}.field", problems)
        if "value" not in rule:
            problems.append(f"{where}: force needs a 'value'")
        else:
            _refs(rule["value"], f"{where}.value", problems)
    elif name == "remove":
        fields = rule.get("fields")
        if not isinstance(fields, list) or not fields:
            problems.append(f"{where}: remove needs a non-empty 'fields' list")
        else:
            for index, item in enumerate(fields):
                _target(item, f"{where}.fields[{index}]", problems)
    elif name == "protected":
        if protected_fields(rule.get("fields")) is None:
            problems.append(f"{where}: protected needs a non-empty 'fields' list of document paths (like userId)")


def validate_rule(rule: Any, path: str = "", *, max_depth: int = 16) -> list[str]:
    """Problems in one rule, each prefixed by where it is (``path``, then ``.and[1]`` ...).

    An empty list means the rule is well formed. ``None`` (no rule) is valid: it denies.
    """
    if rule is None:
        return []
    problems: list[str] = []
    _check(rule, path or "rule", 0, max_depth, problems)
    return problems
