"""Mission Control's rules endpoints (gateway/admin_rules.py, admin_playground.py): set and remove rules
(validated, applied at once, written back), the playground's explained decisions without running the
request, and trying a function as a chosen caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from sdk import Mesh
from tests.gateway.admin_support import AdminStack, admin_stack, sign_up
from tests.support.servers import SECRET

OWNER = {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.find.owner"}
COLLECTIONS: dict[str, Any] = {
    "notes": {"rules": {"read": OWNER, "create": {"rule": "authenticated"}}},
    "default": {"rules": {"read": {"rule": "allow"}, "delete": {"rule": "deny"}}},
    "users": {"rules": {"read": {"rule": "authenticated"}}},
}
FUNCTIONS: dict[str, Any] = {"services": {
    "calc": {"functions": {"add": {"rule": {"rule": "deny"}}}},
    "default": {"functions": {"default": {"rule": {"rule": "authenticated"}}}},
}}


@pytest.fixture
async def st(tmp_path: Path, nats_url: str) -> AsyncIterator[AdminStack]:
    async with admin_stack(tmp_path, nats_url, collections=COLLECTIONS, functions=FUNCTIONS) as s:
        yield s


def user_token(uid: str, **claims: Any) -> str:
    return jwt.encode({"id": uid, "exp": 2**31, **claims}, SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_set_a_crud_rule_and_requests_obey_it(st: AdminStack) -> None:
    before = st.path.read_text()
    url = st.url("rules/crud/sqlite/notes/update")
    for bad, fragment in (({}, "rule"), ({"rule": "allow"}, "rule"), ({"rule": {"rule": "sometimes"}}, "sometimes"),
                          ({"rule": {"rule": "match", "eval": "~", "type": "string", "f1": 1, "f2": 2}}, "eval"),
                          ({"rule": {"rule": "protected", "fields": []}}, "protected")):
        r = await st.http.put(url, headers=st.admin, json=bad)
        assert r.status_code == 400, bad
        assert fragment in r.json()["error"]
    assert (await st.http.put(st.url("rules/crud/sqlite/notes/upsert"), headers=st.admin,
                              json={"rule": {"rule": "allow"}})).status_code == 400
    assert (await st.http.put(st.url("rules/crud/nope/notes/read"), headers=st.admin,
                              json={"rule": {"rule": "allow"}})).status_code == 404
    assert st.path.read_text() == before

    await st.http.post(st.url("data/sqlite/notes/create"), headers=st.admin, json={"doc": {"id": "n1", "owner": "u1"}})
    update = {"find": {"id": "n1"}, "update": {"$set": {"text": "hi", "owner": "u2"}}}
    r = await st.http.post(st.crud("notes", "update"), json=update, headers=bearer(user_token("u1")))
    assert r.status_code == 401  # no update rule: deny
    rule = {"rule": "and", "clauses": [{"rule": "authenticated"}, {"rule": "protected", "fields": ["owner"]}]}
    r = await st.http.put(url, headers=st.admin, json={"rule": rule})
    assert r.status_code == 200, r.text
    assert r.json()["copiedFromDefault"] == []
    assert st.saved()["modules"]["crud"]["sqlite"]["collections"]["notes"]["rules"]["update"] == rule
    r = await st.http.post(st.crud("notes", "update"), json=update, headers=bearer(user_token("u1")))
    assert r.status_code == 403 and "protected" in r.json()["error"]
    r = await st.http.post(st.crud("notes", "update"), json={"find": {"id": "n1"}, "update": {"$set": {"text": "hi"}}},
                           headers=bearer(user_token("u1")))
    assert r.status_code == 200

    r = await st.http.delete(url, headers=st.admin)
    assert r.status_code == 200 and "update" not in st.saved()["modules"]["crud"]["sqlite"]["collections"]["notes"][
        "rules"]
    assert (await st.http.delete(url, headers=st.admin)).status_code == 404


async def test_listing_a_new_collection_keeps_defaults_rules(st: AdminStack) -> None:
    assert (await st.http.post(st.crud("fresh", "read"), json={})).status_code == 200  # default allows read
    r = await st.http.put(st.url("rules/crud/sqlite/fresh/create"), headers=st.admin, json={"rule": {"rule": "allow"}})
    assert r.status_code == 200
    assert sorted(r.json()["copiedFromDefault"]) == ["delete", "read"]
    assert (await st.http.post(st.crud("fresh", "read"), json={})).status_code == 200  # still allowed
    assert (await st.http.post(st.crud("fresh", "create"), json={"doc": {"id": "f"}})).status_code == 200


async def test_set_a_function_rule(st: AdminStack) -> None:
    token = bearer(user_token("u1"))
    call = f"/v1/api/{st.project}/functions/calc/add"
    assert (await st.http.post(call, json={"params": {}}, headers=token)).status_code == 403
    r = await st.http.put(st.url("rules/functions/calc/add"), headers=st.admin, json={"rule": {"rule": "allow"}})
    assert r.status_code == 200
    assert (await st.http.post(call, json={"params": {}}, headers=token)).status_code == 503  # allowed; none runs
    assert st.saved()["modules"]["functions"]["services"]["calc"]["functions"]["add"]["rule"] == {"rule": "allow"}
    # a service listed for the first time keeps default's rule for its other functions
    r = await st.http.put(st.url("rules/functions/mail/send"), headers=st.admin, json={"rule": {"rule": "deny"}})
    assert r.status_code == 200 and r.json()["copiedFromDefault"] == ["functions.default"]
    assert (await st.http.post(f"/v1/api/{st.project}/functions/mail/other", json={}, headers=token)).status_code == 503
    assert (await st.http.post(f"/v1/api/{st.project}/functions/mail/send", json={}, headers=token)).status_code == 403
    assert (await st.http.put(st.url("rules/functions/bad.name/x"), headers=st.admin,
                              json={"rule": {"rule": "allow"}})).status_code == 400
    assert (await st.http.delete(st.url("rules/functions/calc/add"), headers=st.admin)).status_code == 200
    assert (await st.http.post(call, json={"params": {}}, headers=token)).status_code == 403
    assert (await st.http.delete(st.url("rules/functions/calc/add"), headers=st.admin)).status_code == 404


async def test_validate(st: AdminStack) -> None:
    url = st.url("rules/validate")
    r = await st.http.post(url, headers=st.admin, json={"rule": {"rule": "and", "clauses": [{"rule": "nope"}]}})
    assert r.status_code == 200 and r.json()["problems"] == ["rule.and[0]: unknown rule type 'nope'"]
    r = await st.http.post(url, headers=st.admin, json={"rule": OWNER})
    assert r.json()["problems"] == []
    assert (await st.http.post(url, headers=st.admin, json={})).status_code == 400


async def play(st: AdminStack, **body: Any) -> dict[str, Any]:
    r = await st.http.post(st.url("playground"), headers=st.admin, json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_playground_explains_without_running(st: AdminStack) -> None:
    ann = await sign_up(st, "ann@example.com")
    uid = ann["user"]["id"]
    target = {"kind": "crud", "alias": "sqlite", "col": "notes", "op": "read"}

    out = await play(st, target=target, body={"find": {"owner": "someone-else"}}, **{"as": {"user": uid,
                                                                                          "alias": "sqlite"}})
    assert out["allowed"] is False and out["status"] == 403
    assert out["message"] == "Auth: The two fields do not match"
    assert out["checks"][0]["explain"] == ["match(args.auth.id == args.find.owner)"]
    assert out["caller"]["claims"]["email"] == "ann@example.com"

    out = await play(st, target=target, body={"find": {"owner": uid}}, **{"as": {"user": uid, "alias": "sqlite"}})
    assert out["allowed"] is True and out["status"] == 200

    out = await play(st, target=target, body={"find": {"owner": uid}})
    assert (out["allowed"], out["status"], out["checks"][0]["explain"]) == (False, 401, ["(token)"])
    out = await play(st, target=target, body={}, **{"as": {"token": "garbage"}})
    assert out["status"] == 401 and out["checks"][0]["what"] == "token"
    out = await play(st, target=target, body={"find": {"owner": "u9"}}, **{"as": {"token": user_token("u9")}})
    assert out["allowed"] is True
    out = await play(st, target=target, body={"find": {"owner": "u9"}}, **{"as": {"claims": {"id": "u9"}}})
    assert out["allowed"] is True

    # no rule: 401 for CRUD, as the API says
    out = await play(st, target={**target, "op": "delete"}, body={}, **{"as": {"claims": {"id": "u9"}}})
    assert (out["allowed"], out["status"], out["message"]) == (False, 401, "Auth: No rule has been provided")
    # a draft rule instead of the saved one; a create per document
    out = await play(st, target={**target, "op": "create"}, body={"doc": [{"a": 1}, {"a": 2}]},
                     rule={"rule": "match", "type": "number", "eval": ">", "f1": "args.doc.a", "f2": 1},
                     **{"as": {"claims": {"id": "u9"}}})
    assert [c["allowed"] for c in out["checks"]] == [False, True] and out["allowed"] is False
    # the guards the API applies before any rule
    out = await play(st, target={**target, "col": "_sc_credentials"}, body={})
    assert out["status"] == 403 and out["checks"][0]["what"] == "reserved collection"
    out = await play(st, target={**target, "col": "users", "op": "create"}, body={"doc": {"id": "x"}},
                     **{"as": {"claims": {"id": "u9"}}})
    assert out["status"] == 403 and out["checks"][0]["what"] == "users guard"

    # a disabled user: every request of theirs is a 401
    await st.http.post(st.url(f"users/sqlite/{uid}"), headers=st.admin, json={"disabled": True})
    out = await play(st, target=target, body={"find": {"owner": uid}}, **{"as": {"user": uid, "alias": "sqlite"}})
    assert out["status"] == 401 and "disabled" in out["caller"]["label"]


async def test_playground_query_and_func_rules_run_only_when_asked(st: AdminStack, nats_url: str) -> None:
    await st.http.post(st.url("data/sqlite/members/create"), headers=st.admin, json={"doc": {"id": "m1", "user": "u1"}})
    rule = {"rule": "or", "clauses": [
        {"rule": "query", "db": "sqlite", "col": "members", "find": {"user": "args.auth.id"}},
        {"rule": "func", "service": "guard", "func": "check"}]}
    body = {"target": {"kind": "crud", "alias": "sqlite", "col": "notes", "op": "read"}, "body": {},
            "rule": rule, "as": {"claims": {"id": "u1"}}}
    out = await play(st, **body)
    assert out["allowed"] is False
    steps = out["checks"][0]["steps"]
    assert [s["rule"] for s in steps] == ["query(sqlite.members)", "func(guard.check)"]
    assert all(s["evaluated"] is False for s in steps)
    assert steps[0]["find"] == {"user": {"$eq": "u1"}}
    out = await play(st, **{**body, "run": True})
    assert out["allowed"] is True and out["checks"][0]["steps"][0] == {
        "rule": "query(sqlite.members)", "find": {"user": {"$eq": "u1"}}, "evaluated": True, "found": True}

    guard = Mesh("guard", project=st.project, nats_url=nats_url)

    @guard.function
    async def check(params: Any, auth: Any) -> Any:
        return {"ack": auth.get("id") == "u2"}

    async with guard:
        out = await play(st, **{**body, "run": True, "as": {"claims": {"id": "u2"}}})
        assert out["allowed"] is True
        assert out["checks"][0]["steps"][1] == {"rule": "func(guard.check)", "evaluated": True,
                                                "result": {"ack": True}}


async def test_playground_functions_upserts_and_bad_input(st: AdminStack) -> None:
    fn = {"kind": "function", "service": "calc", "func": "add"}
    out = await play(st, target=fn, body={"params": {"a": 1}}, **{"as": {"claims": {"id": "u1"}}})
    assert (out["allowed"], out["status"], out["checks"][0]["explain"]) == (False, 403, ["deny"])
    out = await play(st, target={**fn, "func": "other"}, body={}, **{"as": {"claims": {"id": "u1"}}})
    assert out["status"] == 403 and out["message"] == "Auth: No rule has been provided"
    out = await play(st, target={**fn, "service": "billing"}, body={"params": {"x": 1}},
                     **{"as": {"claims": {"id": "u1"}}})
    assert out["allowed"] is True and out["request"] == {"params": {"x": 1}}
    # an upsert must also pass the create rule for what it may insert
    upsert = {"kind": "crud", "alias": "sqlite", "col": "notes", "op": "update"}
    out = await play(st, target=upsert, body={"op": "upsert", "find": {"id": "z"}, "update": {"$set": {"a": 1}}},
                     rule={"rule": "allow"})
    assert [c["what"] for c in out["checks"]] == ["update rule", "create rule (what the upsert may insert)"]
    assert out["allowed"] is False and out["status"] == 401
    for bad in ({}, {"target": {"kind": "crud"}}, {"target": fn, "run": "yes"},
                {"target": fn, "rule": {"rule": "nope"}}, {"target": fn, "as": {"user": 5}},
                {"target": fn, "as": "admin"}, {"target": fn, "as": {"claims": {}}},
                {"target": {**upsert, "op": "read"}, "body": {"find": {"a": {"$regex": "x"}}}},
                {"target": {"kind": "function", "service": "bad name", "func": "x"}},
                {"target": fn, "as": {"user": "nobody", "alias": "sqlite"}}):
        r = await st.http.post(st.url("playground"), headers=st.admin, json=bad)
        assert r.status_code == 400, bad


async def test_try_a_function_as_a_caller(st: AdminStack, nats_url: str) -> None:
    calc = Mesh("calc", project=st.project, nats_url=nats_url)

    @calc.function
    async def add(params: Any, auth: Any) -> Any:
        return {"sum": params["a"] + params["b"], "by": (auth or {}).get("id")}

    url = st.url("functions/calc/add")
    async with calc:
        r = await st.http.post(url, headers=st.admin, json={"params": {"a": 1, "b": 2}})
        assert r.status_code == 200 and r.json()["ok"] is False and r.json()["status"] == 401  # deny, no token
        r = await st.http.post(url, headers=st.admin, json={"params": {"a": 1, "b": 2}, "as": {"claims": {"id": "u"}}})
        assert (r.json()["ok"], r.json()["status"]) == (False, 403)
        await st.http.put(st.url("rules/functions/calc/add"), headers=st.admin,
                          json={"rule": {"rule": "authenticated"}})
        r = await st.http.post(url, headers=st.admin, json={"params": {"a": 1, "b": 2}, "as": {"claims": {"id": "u"}}})
        assert r.json()["ok"] is True and r.json()["result"] == {"sum": 3, "by": "u"} and r.json()["ms"] > 0
        r = await st.http.post(url, headers=st.admin, json={"params": {"a": 1}, "as": {"claims": {"id": "u"}}})
        assert r.json()["ok"] is False and r.json()["status"] == 500
    r = await st.http.post(url, headers=st.admin, json={"params": {"a": 1, "b": 2}, "as": {"claims": {"id": "u"}}})
    assert (r.json()["ok"], r.json()["status"]) == (False, 503)
    for bad in ({"timeout": -1}, {"timeout": "soon"}, {"as": 5}):
        assert (await st.http.post(url, headers=st.admin, json=bad)).status_code == 400, bad
    assert (await st.http.post(st.url("functions/bad name/x"), headers=st.admin, json={})).status_code == 400
