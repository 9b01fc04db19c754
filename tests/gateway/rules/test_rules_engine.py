"""Each rule type through ``evaluate``: verdict, status, message and explain path."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.rules import Decision, evaluate
from tests.gateway.rules.rules_fakes import USER, FakeContext, match, state

OWNER = match("==", "string", "args.auth.id", "args.find.userId")
NOT_OWNER_MSG = "Auth: The two fields do not match"


async def test_no_rule_is_401() -> None:
    decision = await evaluate(None, state(), FakeContext())
    assert decision == Decision(False, 401, "Auth: No rule has been provided", ["(no rule)"])


async def test_allow_needs_no_auth() -> None:
    assert await evaluate({"rule": "allow"}, {"auth": None}, FakeContext()) == Decision(
        True, 200, "", ["allow"]
    )


@pytest.mark.parametrize(
    "rule",
    [
        {"rule": "deny"},
        {"rule": "authenticated"},
        OWNER,
        {"rule": "and", "clauses": [{"rule": "allow"}]},
        {"rule": "or", "clauses": [{"rule": "allow"}]},
        {"rule": "query", "db": "mongo", "col": "c", "find": {}},
        {"rule": "func", "service": "s", "func": "f"},
        {"rule": "force", "field": "args.doc.x", "value": 1},
        {"rule": "remove", "fields": ["args.doc.x"]},
    ],
)
@pytest.mark.parametrize("auth", [None, {}, "u1", ["u1"]])
async def test_everything_but_allow_needs_valid_claims(rule: dict[str, Any], auth: Any) -> None:
    ctx = FakeContext()
    decision = await evaluate(rule, {"auth": auth, "doc": {}, "find": {"userId": "u1"}}, ctx)
    assert (decision.allowed, decision.status) == (False, 401)
    assert decision.message == "Auth: A valid token is required"
    assert ctx.queries == [] and ctx.calls == []


async def test_authenticated_and_deny_with_claims() -> None:
    assert await evaluate({"rule": "authenticated"}, state(), FakeContext()) == Decision(
        True, 200, "", ["authenticated"]
    )
    assert await evaluate({"rule": "deny"}, state(), FakeContext()) == Decision(
        False, 403, "Auth: Access denied by rule", ["deny"]
    )


async def test_match_explain_paths() -> None:
    ok = await evaluate(OWNER, state(find={"userId": "u1"}), FakeContext())
    assert ok == Decision(True, 200, "", ["match(args.auth.id == args.find.userId)"])
    no = await evaluate(OWNER, state(find={"userId": "u2"}), FakeContext())
    assert no == Decision(False, 403, NOT_OWNER_MSG, ["match(args.auth.id == args.find.userId)"])
    literal = await evaluate(match("==", "string", "args.auth.role", "admin"), state(), FakeContext())
    assert literal.explain == ['match(args.auth.role == "admin")']
    missing = await evaluate(OWNER, state(find={}), FakeContext())
    assert (missing.status, missing.message) == (403, "Auth: A variable used by the rule is not set")


async def test_and_reports_the_failing_clause() -> None:
    rule = {"rule": "and", "clauses": [{"rule": "authenticated"}, OWNER]}
    ok = await evaluate(rule, state(find={"userId": "u1"}), FakeContext())
    assert ok.explain == ["and[0].authenticated", "and[1].match(args.auth.id == args.find.userId)"]
    no = await evaluate(rule, state(find={"userId": "u2"}), FakeContext())
    assert no == Decision(False, 403, NOT_OWNER_MSG, ["and[1].match(args.auth.id == args.find.userId)"])


async def test_or_reports_the_passing_clause_or_every_failure() -> None:
    admin = match("==", "string", "args.auth.role", "admin")
    rule = {"rule": "or", "clauses": [admin, OWNER]}
    ok = await evaluate(rule, state(find={"userId": "u1"}), FakeContext())
    assert ok.explain == ["or[1].match(args.auth.id == args.find.userId)"]
    no = await evaluate(rule, state(find={"userId": "u2"}), FakeContext())
    assert not no.allowed and no.status == 403
    assert no.explain == [
        'or[0].match(args.auth.role == "admin")',
        "or[1].match(args.auth.id == args.find.userId)",
    ]


async def test_nesting_any_rule_type() -> None:
    rule = {
        "rule": "and",
        "clauses": [
            {
                "rule": "or",
                "clauses": [
                    {"rule": "deny"},
                    {"rule": "query", "db": "mongo", "col": "m", "find": {"user": "args.auth.id"}},
                ],
            },
            {"rule": "and", "clauses": [{"rule": "func", "service": "acl", "func": "check"}]},
        ],
    }
    ctx = FakeContext()
    decision = await evaluate(rule, state(), ctx)
    assert decision.allowed
    assert decision.explain == ["and[0].or[1].query(mongo.m)", "and[1].and[0].func(acl.check)"]
    assert ctx.queries == [("mongo", "m", {"user": {"$eq": "u1"}})]


async def test_query_resolves_find_as_literals() -> None:
    rule = {
        "rule": "query",
        "db": "sql-postgres",
        "col": "members",
        "find": {
            "user": "args.auth.id",
            "project": "args.doc.project",
            "role": {"$in": ["owner", "admin"]},
            "team": {"$in": "args.auth.teams"},
            "$or": [{"a": "args.doc.a"}, {"b": 1}],
        },
    }
    ctx = FakeContext()
    args = state(auth={"id": "u1", "teams": ["t1"]}, doc={"project": "p1", "a": [1, 2]})
    assert (await evaluate(rule, args, ctx)).allowed
    assert ctx.queries == [
        (
            "sql-postgres",
            "members",
            {
                "user": {"$eq": "u1"},
                "project": {"$eq": "p1"},
                "role": {"$in": ["owner", "admin"]},
                "team": {"$in": ["t1"]},
                "$or": [{"a": {"$eq": [1, 2]}}, {"b": 1}],
            },
        )
    ]


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (FakeContext(found=False), "Auth: No document matched the query rule"),
        (FakeContext(error=TimeoutError()), "Auth: The query rule could not be evaluated"),
    ],
)
async def test_query_denies(ctx: FakeContext, message: str) -> None:
    rule = {"rule": "query", "db": "mongo", "col": "c", "find": {"x": 1}}
    assert await evaluate(rule, state(), ctx) == Decision(False, 403, message, ["query(mongo.c)"])


async def test_func_gets_params_without_auth_and_token() -> None:
    ctx = FakeContext()
    args = state(op="read", find={"a": 1})
    decision = await evaluate({"rule": "func", "service": "acl", "func": "check"}, args, ctx)
    assert decision == Decision(True, 200, "", ["func(acl.check)"])
    assert ctx.calls == [("acl", "check", {"op": "read", "find": {"a": 1}}, USER)]


@pytest.mark.parametrize(
    "result", [{"ack": False}, {"ack": 1}, {"ack": "true"}, {"ok": True}, [True], True, "ack"]
)
async def test_func_needs_ack_true(result: Any) -> None:
    decision = await evaluate(
        {"rule": "func", "service": "s", "func": "f"}, state(), FakeContext(result=result)
    )
    assert (decision.allowed, decision.status) == (False, 403)


async def test_func_error_denies() -> None:
    decision = await evaluate(
        {"rule": "func", "service": "s", "func": "f"}, state(), FakeContext(error=RuntimeError("boom"))
    )
    assert decision.message == "Auth: The function rule could not be evaluated"


async def test_force_and_remove_mutate_args() -> None:
    rule = {
        "rule": "and",
        "clauses": [
            {"rule": "force", "field": "args.doc.userId", "value": "args.auth.id"},
            {"rule": "force", "field": "args.doc.meta.source", "value": "web"},
            {"rule": "force", "field": "args.doc.groups", "value": "args.auth.groups"},
            {"rule": "remove", "fields": ["args.doc.isAdmin", "args.doc.absent", "args.nothing.here"]},
        ],
    }
    args = state(auth={"id": "u1", "groups": ["g"]}, doc={"userId": "evil", "isAdmin": True})
    decision = await evaluate(rule, args, FakeContext())
    assert decision.allowed
    assert decision.explain[0] == "and[0].force(args.doc.userId)"
    assert args["doc"] == {"userId": "u1", "meta": {"source": "web"}, "groups": ["g"]}
    args["doc"]["groups"].append("x")
    assert args["auth"]["groups"] == ["g"]  # forced values are copies


@pytest.mark.parametrize(("doc", "value"), [({"meta": "flat"}, 1), ({}, "args.auth.nope")])
async def test_force_that_cannot_apply_denies(doc: dict[str, Any], value: Any) -> None:
    rule = {"rule": "force", "field": "args.doc.meta.x", "value": value}
    decision = await evaluate(rule, state(doc=doc), FakeContext())
    assert (decision.allowed, decision.status) == (False, 403)


async def test_failed_or_clause_leaves_no_mutation() -> None:
    rule = {
        "rule": "or",
        "clauses": [
            {
                "rule": "and",
                "clauses": [{"rule": "force", "field": "args.doc.role", "value": "admin"}, {"rule": "deny"}],
            },
            {"rule": "and", "clauses": [{"rule": "remove", "fields": ["args.doc.secret"]}]},
        ],
    }
    args = state(doc={"role": "user", "secret": 1})
    decision = await evaluate(rule, args, FakeContext())
    assert decision.allowed and decision.explain == ["or[1].and[0].remove(args.doc.secret)"]
    assert args["doc"] == {"role": "user"}


@pytest.mark.parametrize(
    "rule",
    [
        {"rule": "nope"},
        {"rule": "Allow"},
        {"rule": None},
        {},
        "allow",
        ["allow"],
        {"rule": "and", "clauses": []},
        {"rule": "or"},
        {"rule": "match", "eval": "==", "type": "string"},
        {"rule": "match", "eval": "==", "type": "str", "f1": "a", "f2": "a"},
        {"rule": "query", "db": "mongo", "col": "c"},
        {"rule": "func", "service": "s"},
        {"rule": "force", "field": "doc.x", "value": 1},
        {"rule": "remove", "fields": []},
    ],
)
async def test_malformed_rules_deny(rule: Any) -> None:
    decision = await evaluate(rule, state(), FakeContext())
    assert (decision.allowed, decision.status) == (False, 403)
    assert decision.message.startswith("Auth: ")
    assert len(decision.explain) == 1
