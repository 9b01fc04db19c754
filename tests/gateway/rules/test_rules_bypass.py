"""Attempts to get past the rules. Every case here must be denied."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules import crud_rule, evaluate
from tests.gateway.rules.rules_fakes import FakeContext, match, state

OWNER = match("==", "string", "args.auth.id", "args.find.userId")
MEMBER_QUERY = {"rule": "query", "db": "mongo", "col": "members", "find": {"userId": "args.find.userId"}}
IN_QUERY = {"rule": "query", "db": "mongo", "col": "members", "find": {"userId": {"$in": "args.find.ids"}}}


def nested(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    rule = leaf
    for i in range(levels):
        rule = {"rule": "and" if i % 2 else "or", "clauses": [rule]}
    return rule


def cyclic() -> dict[str, Any]:
    rule: dict[str, Any] = {"rule": "and", "clauses": []}
    rule["clauses"].append(rule)
    return rule


CASES: list[tuple[str, Any, dict[str, Any], int]] = [
    # type confusion: never coerced
    ("string '1' vs number 1", match("==", "number", "args.find.n", 1), state(find={"n": "1"}), 403),
    ("number 1 vs string '1'", match("==", "string", "args.find.s", "1"), state(find={"s": 1}), 403),
    ("bool 'true' vs true", match("==", "bool", "args.find.b", True), state(find={"b": "true"}), 403),
    ("bool 1 vs true", match("==", "bool", "args.find.b", True), state(find={"b": 1}), 403),
    ("number true vs 1", match(">=", "number", "args.auth.level", 1), state(auth={"level": True}), 403),
    ("number in [true]", match("in", "number", "args.find.n", [True, 2]), state(find={"n": 1}), 403),
    ("!= with wrong type", match("!=", "string", "args.find.s", "admin"), state(find={"s": ["admin"]}), 403),
    (
        "notIn with a non-list",
        match("notIn", "string", "args.find.s", "args.find.s"),
        state(find={"s": "x"}),
        403,
    ),
    # operator injection through values a query rule reads
    ("$ne injected", MEMBER_QUERY, state(find={"userId": {"$ne": None}}), 403),
    ("$gt nested injected", MEMBER_QUERY, state(find={"userId": {"a": [{"$gt": ""}]}}), 403),
    ("$where injected", MEMBER_QUERY, state(find={"userId": {"$where": "1"}}), 403),
    ("operator in $in list", IN_QUERY, state(find={"ids": [{"$ne": None}]}), 403),
    ("missing variable in query", MEMBER_QUERY, state(find={}), 403),
    # missing claims
    ("auth None", OWNER, {"auth": None, "find": {"userId": None}}, 401),
    ("auth missing", OWNER, {"find": {"userId": "u1"}}, 401),
    ("auth {}", OWNER, state(auth={}, find={"userId": "u1"}), 401),
    ("auth not a dict", {"rule": "authenticated"}, {"auth": "u1"}, 401),
    ("both sides missing", OWNER, state(auth={"role": "user"}, find={}), 403),
    ("null == null", OWNER, state(auth={"id": None}, find={"userId": None}), 403),
    # Space Cloud falls back to the literal when a string variable does not resolve: not here
    ("variable text as data", OWNER, state(auth={"role": "user"}, find={"userId": "args.auth.id"}), 403),
    ("variable text as data 2", OWNER, state(find={"userId": "args.auth.id"}), 403),
    # deny is not overridden
    ("deny", {"rule": "deny"}, state(), 403),
    (
        "deny inside or",
        {"rule": "or", "clauses": [{"rule": "deny"}, OWNER]},
        state(find={"userId": "x"}),
        403,
    ),
    ("deny inside and", {"rule": "and", "clauses": [{"rule": "allow"}, {"rule": "deny"}]}, state(), 403),
    ("internal-sc-user", {"rule": "deny"}, state(auth={"id": "internal-sc-user"}), 403),
    ("allow nested needs a token", {"rule": "or", "clauses": [{"rule": "allow"}]}, {"auth": None}, 401),
    # depth and shape
    ("deep nesting", nested(100, {"rule": "allow"}), state(), 403),
    ("cyclic rule", cyclic(), state(), 403),
    ("unknown type", {"rule": "Allow"}, state(), 403),
    ("rule type with space", {"rule": "allow "}, state(), 403),
    ("rule not an object", "allow", state(), 403),
    # dunder and code in variables
    ("dunder attribute", match("==", "string", "args.__class__", "dict"), state(), 403),
    ("dunder via quote", match("==", "string", "args.auth['__class__']", "dict"), state(), 403),
    (
        "dunder via bracket value",
        match("==", "string", "args.auth[args.find.k]", "x"),
        state(find={"k": "__doc__"}),
        403,
    ),
    ("code in variable", match("==", "string", "args.auth.id or True", "x"), state(), 403),
    ("import in variable", match("==", "string", "utils.__import__(os)", "x"), state(), 403),
    # rules may not rewrite the caller's identity
    (
        "force auth",
        {
            "rule": "and",
            "clauses": [
                {"rule": "force", "field": "args.auth.role", "value": "admin"},
                match("==", "string", "args.auth.role", "admin"),
            ],
        },
        state(),
        403,
    ),
    ("remove token", {"rule": "remove", "fields": ["args.token"]}, state(), 403),
    # func acks must be exactly true
    ("func ack 1", {"rule": "func", "service": "s", "func": "f", "_result": {"ack": 1}}, state(), 403),
    (
        "func ack 'true'",
        {"rule": "func", "service": "s", "func": "f", "_result": {"ack": "true"}},
        state(),
        403,
    ),
]


@pytest.mark.parametrize(("rule", "args", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bypass_is_denied(rule: Any, args: dict[str, Any], status: int) -> None:
    result = rule.get("_result") if isinstance(rule, dict) else None
    ctx = FakeContext(result=result)
    decision = await evaluate(rule, args, ctx)
    assert (decision.allowed, decision.status) == (False, status), decision
    assert ctx.queries == [], "an injected or unresolved value must never reach the database"


async def test_depth_limit_message_and_custom_limit() -> None:
    decision = await evaluate(nested(17, {"rule": "authenticated"}), state(), FakeContext())
    assert decision.message == "Auth: Rule is nested deeper than 16 levels"
    assert decision.explain[0].startswith("or[0].and[0].or[0].") and decision.explain[0].endswith("...")
    assert (await evaluate(nested(16, {"rule": "authenticated"}), state(), FakeContext())).allowed
    assert not (
        await evaluate(nested(3, {"rule": "authenticated"}), state(), FakeContext(), max_depth=2)
    ).allowed


async def test_depth_error_inside_or_is_not_skipped() -> None:
    rule = {"rule": "or", "clauses": [nested(40, {"rule": "deny"}), {"rule": "authenticated"}]}
    assert not (await evaluate(rule, state(), FakeContext())).allowed


async def test_default_fallback_rules_still_apply() -> None:
    config = {
        "collections": {
            "todos": {"rules": {"read": OWNER}},
            "default": {"rules": {"read": {"rule": "deny"}, "delete": {"rule": "allow"}}},
        }
    }
    # an absent collection gets default.read = deny
    assert not (await evaluate(crud_rule(config, "secrets", "read"), state(), FakeContext())).allowed
    # a listed collection never borrows default.delete = allow: no rule -> 401
    decision = await evaluate(crud_rule(config, "todos", "delete"), state(), FakeContext())
    assert (decision.allowed, decision.status, decision.message) == (
        False,
        401,
        "Auth: No rule has been provided",
    )
    # the listed rule still checks ownership
    assert not (
        await evaluate(crud_rule(config, "todos", "read"), state(find={"userId": "x"}), FakeContext())
    ).allowed


async def test_query_exception_and_falsy_results_deny() -> None:
    for ctx in (FakeContext(found=False), FakeContext(error=ConnectionError())):
        assert not (await evaluate(MEMBER_QUERY, state(find={"userId": "u1"}), ctx)).allowed


async def test_absurdly_nested_request_data_fails_closed() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    ctx = FakeContext()
    decision = await evaluate(MEMBER_QUERY, state(find={"userId": deep}), ctx)
    assert (decision.allowed, decision.status) == (False, 403)
    assert ctx.queries == []
