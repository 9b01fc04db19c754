"""Config-load checks: every problem is reported with where it is."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules import validate_rule
from tests.gateway.rules.rules_fakes import match

VALID: list[Any] = [
    None,
    {"rule": "allow"},
    {"rule": "deny"},
    {"rule": "authenticated"},
    match("==", "string", "args.auth.id", "args.find.userId"),
    match("in", "string", "args.auth.role", ["admin", "owner"]),
    match("notIn", "number", "args.doc.n", "args.auth.blocked"),
    match(">=", "date", "args.doc.at", "2020-01-01T00:00:00Z"),
    match("==", "bool", "utils.exists(args.find.userId)", True),
    {"rule": "and", "clauses": [{"rule": "or", "clauses": [{"rule": "deny"}, {"rule": "authenticated"}]}]},
    {"rule": "query", "db": "mongo", "col": "members", "find": {"user": "args.auth.id", "n": {"$in": [1]}}},
    {"rule": "func", "service": "acl", "func": "check"},
    {"rule": "force", "field": "args.doc.userId", "value": "args.auth.id"},
    {"rule": "force", "field": "args.doc.public", "value": False},
    {"rule": "remove", "fields": ["args.doc.isAdmin", "args.update.$set.isAdmin"]},
]


@pytest.mark.parametrize("rule", VALID)
def test_valid_rules(rule: Any) -> None:
    assert validate_rule(rule, "todos.read") == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"rule": "read"}, "rule: unknown rule type 'read'"),
        ({"rule": "webhook", "url": "http://x"}, "unknown rule type 'webhook'"),
        ({}, "unknown rule type None"),
        ("allow", "a rule must be an object, got str"),
        ({"rule": ["allow"]}, "unknown rule type ['allow']"),
        (match("=~", "string", "a", "b"), "rule: unknown eval '=~'"),
        (match("==", "str", "a", "b"), "rule: unknown match type 'str'"),
        (match("==", ["x"], "a", "b"), "unknown match type ['x']"),
        (match("<", "string", "a", "b"), "eval '<' is not supported for type string"),
        (match("<", "bool", True, False), "eval '<' is not supported for type bool"),
        ({"rule": "match", "eval": "==", "type": "string", "f1": "a"}, "rule: match needs 'f2'"),
        (match("==", "number", "args.doc.n", "5"), "rule.f2: literal '5' is not a number"),
        (match("==", "bool", "args.doc.b", "true"), "rule.f2: literal 'true' is not a bool"),
        (match("==", "number", "args.doc.n", True), "literal True is not a number"),
        (match("==", "date", "args.doc.at", "yesterday"), "literal 'yesterday' is not a date"),
        (match("in", "string", "args.doc.s", "a,b"), "f2 of 'in' must be a list or a variable"),
        (match("==", "string", "args.__class__", "x"), "rule.f1: refused name '__class__'"),
        (match("==", "string", "args.auth.id ", "x"), "rule.f1: unexpected character"),
        (match("==", "string", "utils.exist(args.a)", "x"), "unknown utility"),
        ({"rule": "and"}, "rule: 'and' needs a non-empty 'clauses' list"),
        ({"rule": "or", "clauses": []}, "'or' needs a non-empty 'clauses' list"),
        ({"rule": "or", "clauses": {"rule": "allow"}}, "'or' needs a non-empty 'clauses' list"),
        (
            {"rule": "and", "clauses": [{"rule": "allow"}, {"rule": "nope"}]},
            "rule.and[1]: unknown rule type 'nope'",
        ),
        ({"rule": "query", "col": "c", "find": {}}, "rule: 'db' must be a non-empty string"),
        ({"rule": "query", "db": "mongo", "col": "", "find": {}}, "'col' must be a non-empty string"),
        ({"rule": "query", "db": "mongo", "col": "c"}, "query needs a 'find' object"),
        (
            {"rule": "query", "db": "m", "col": "c", "find": {"a": {"$in": ["args.x["]}}},
            "rule.find.a.$in[0]:",
        ),
        ({"rule": "func", "service": "s"}, "'func' must be a non-empty string"),
        ({"rule": "force", "field": "doc.x", "value": 1}, "must be a variable path starting with 'args.'"),
        ({"rule": "force", "field": "args.auth.id", "value": "admin"}, "under args.auth"),
        ({"rule": "force", "field": "args.token", "value": ""}, "under args.token"),
        ({"rule": "force", "field": "args.doc[args.auth.id]", "value": 1}, "may only use .name segments"),
        ({"rule": "force", "field": "args", "value": 1}, "must name a field inside args"),
        ({"rule": "force", "field": "args.doc.x"}, "force needs a 'value'"),
        ({"rule": "remove", "fields": "args.doc.x"}, "remove needs a non-empty 'fields' list"),
        (
            {"rule": "remove", "fields": ["args.doc.x", "args.auth"]},
            "rule.fields[1]: field 'args.auth' is under",
        ),
    ],
)
def test_problems(rule: Any, problem: str) -> None:
    problems = validate_rule(rule)
    assert any(problem in p for p in problems), problems


def test_problem_paths_use_the_given_prefix() -> None:
    rule = {"rule": "or", "clauses": [{"rule": "allow"}, {"rule": "and", "clauses": [match("~", "x", 1, 2)]}]}
    problems = validate_rule(rule, "crud.mongo.todos.read")
    assert problems[0].startswith("crud.mongo.todos.read.or[1].and[0]: ")
    assert len(problems) == 2


def nested(levels: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"rule": "allow"}
    for _ in range(levels):
        rule = {"rule": "and", "clauses": [rule]}
    return rule


def test_depth_limit() -> None:
    assert validate_rule(nested(16)) == []
    assert any("nested deeper than 16 levels" in p for p in validate_rule(nested(17)))
    assert validate_rule(nested(17), max_depth=20) == []


def test_cyclic_rule_is_reported_not_recursed_forever() -> None:
    rule: dict[str, Any] = {"rule": "or", "clauses": []}
    rule["clauses"].append(rule)  # YAML anchors can build this
    assert any("nested deeper" in p for p in validate_rule(rule))
