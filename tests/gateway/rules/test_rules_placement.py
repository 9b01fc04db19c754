"""Where rules are found in the config (spec §5.3), v0.10 and v0.11/12 shapes."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules import crud_rule, function_rule

ALLOW = {"rule": "allow"}
DENY = {"rule": "deny"}
AUTH = {"rule": "authenticated"}

CRUD: dict[str, Any] = {
    "enabled": True,
    "collections": {
        "todos": {"isRealtimeEnabled": True, "rules": {"read": AUTH, "create": ALLOW}},
        "bare": {"isRealtimeEnabled": False},
        "odd": {"rules": {"read": "allow"}},
        "default": {"rules": {"read": ALLOW, "delete": DENY, "update": ALLOW}},
    },
}


@pytest.mark.parametrize(
    ("col", "op", "expected"),
    [
        ("todos", "read", AUTH),
        ("todos", "create", ALLOW),
        ("todos", "update", None),  # listed collection: no fallback to default.update
        ("todos", "delete", None),
        ("bare", "read", None),  # listed without rules: still no fallback
        ("odd", "read", None),  # a rule must be an object
        ("missing", "read", ALLOW),  # absent collection: default
        ("missing", "delete", DENY),
        ("missing", "aggr", None),
        ("default", "read", ALLOW),
    ],
)
def test_crud_rule(col: str, op: str, expected: dict[str, Any] | None) -> None:
    assert crud_rule(CRUD, col, op) == expected


@pytest.mark.parametrize(
    "config", [{}, {"collections": None}, {"collections": {"todos": {}}}, {"collections": []}]
)
def test_crud_rule_without_default_is_none(config: dict[str, Any]) -> None:
    assert crud_rule(config, "other", "read") is None


V12: dict[str, Any] = {
    "enabled": True,
    "services": {
        "echo": {"functions": {"say": {"rule": AUTH}, "noRule": {}, "default": {"rule": DENY}}},
        "strict": {"functions": {"only": {"rule": ALLOW}}},
        "empty": {},
        "default": {"functions": {"ping": {"rule": ALLOW}, "default": {"rule": AUTH}}},
    },
}


@pytest.mark.parametrize(
    ("service", "func", "expected"),
    [
        ("echo", "say", AUTH),
        ("echo", "other", DENY),  # function default of the same service
        ("echo", "noRule", DENY),  # listed function without a rule -> function default
        ("strict", "only", ALLOW),
        ("strict", "other", None),  # listed service: never the default service
        ("strict", "ping", None),
        ("empty", "ping", ALLOW),  # service without functions -> default service (as SC@v0.12.0)
        ("absent", "ping", ALLOW),  # absent service -> default service, named function
        ("absent", "other", AUTH),  # ... then its default function
    ],
)
def test_function_rule_v12(service: str, func: str, expected: dict[str, Any] | None) -> None:
    assert function_rule(V12, service, func) == expected


def test_function_rule_v12_without_default_service() -> None:
    config = {"services": {"echo": {"functions": {"say": {"rule": ALLOW}}}}}
    assert function_rule(config, "echo", "say") == ALLOW
    assert function_rule(config, "other", "say") is None


V10: dict[str, Any] = {
    "enabled": True,
    "broker": "nats",
    "rules": {"echo": {"say": AUTH}, "default": {"default": ALLOW}, "odd": {"f": "allow"}},
}


@pytest.mark.parametrize(
    ("service", "func", "expected"),
    [
        ("echo", "say", AUTH),
        ("echo", "other", None),
        ("x", "say", None),
        ("x", "default", None),
        ("odd", "f", None),
    ],
)
def test_function_rule_v10_has_no_default(service: str, func: str, expected: dict[str, Any] | None) -> None:
    assert function_rule(V10, service, func) == expected


@pytest.mark.parametrize("config", [{}, {"enabled": True}, {"rules": None}, {"services": None}])
def test_function_rule_empty(config: dict[str, Any]) -> None:
    assert function_rule(config, "echo", "say") is None
