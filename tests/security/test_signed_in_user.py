"""Attacks by a signed-in user, with the documented rules, on every database.

- password hashes never leave the server (CRUD reads, aggregations, distinct, live queries, legacy data);
- `protected` fields cannot be written with any update operator or path, an upsert is checked against
  the create rule too, and the CRUD route on `users` cannot change what edit_profile owns;
- the server's own collections cannot be named; tokens must expire unless the project says otherwise.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
import websockets

from mesh.messages import DbRequest
from tests.support.live import LiveClient
from tests.support.servers import SECRET
from tests.support.stack import Stack, database_params, stack

OWNER = {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.find.userId"}
TODO_RULES = {
    "create": {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.doc.userId"},
    "read": OWNER,
    "update": {"rule": "and", "clauses": [OWNER, {"rule": "protected", "fields": ["userId", "meta.owner"]}]},
    "delete": OWNER,
}
USERS_RULES = {"read": {"rule": "authenticated"}, "update": {"rule": "allow"}, "delete": {"rule": "deny"},
               "aggr": {"rule": "authenticated"}}
"""The documented `users: read: authenticated` shape, made even looser: no rule may expose a hash."""


@pytest.fixture(params=database_params())
async def st(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Stack]:
    todos, closed = "todos_" + uuid.uuid4().hex[:8], "closed_" + uuid.uuid4().hex[:8]
    collections = {todos: {"rules": TODO_RULES}, "users": {"rules": USERS_RULES, "isRealtimeEnabled": True},
                   closed: {"rules": {"read": OWNER, "update": OWNER, "create": {"rule": "deny"}}}}
    async with stack(request.param, tmp_path, nats_url, collections=collections,
                     auth={"email": {"enabled": True}}) as s:
        s.names.update(todos=todos, closed=closed)
        yield s


async def signup(st: Stack, name: str = "u") -> tuple[str, dict[str, str]]:
    r = await st.http.post(f"/v1/api/{st.project}/auth/{st.alias}/email/signup",
                           json={"email": f"{name}-{uuid.uuid4().hex[:8]}@example.com", "name": name, "pass": "pw-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    return str(body["user"][st.id]), {"Authorization": f"Bearer {body['token']}"}


def no_hash(value: Any) -> bool:
    text = str(value)
    return "argon2" not in text and "'pass'" not in text and '"pass"' not in text


async def test_hashes_never_leave_on_any_read_path(st: Stack) -> None:
    uid, headers = await signup(st, "ann")
    await signup(st, "bob")
    # an earlier version's user, with its hash inside `users`
    legacy = {st.id: "legacy-" + uuid.uuid4().hex[:6], "email": "old@example.com", "role": "user",
              "pass": "$argon2id$v=19$m=65536,t=3,p=4$legacy$hash"}
    await st.gw.gw.core.db_request(st.project, st.alias, "create", DbRequest(col="users", op="one", doc=legacy))
    reads = [
        ("read", {"find": {}}),
        ("read", {"op": "one", "find": {st.id: legacy[st.id]}}),
        ("read", {"find": {}, "options": {"select": {"pass": 1}}}),
        ("aggr", {"pipe": [{"$match": {}}]}),
    ]
    for kind, body in reads:
        r = await st.http.post(st.crud("users", kind), json=body, headers=headers)
        assert r.status_code == 200, (kind, body, r.text)
        assert no_hash(r.json()), (kind, body, r.text)
    for kind, body in [("read", {"op": "distinct", "options": {"distinct": "pass"}}),
                       ("aggr", {"pipe": [{"$group": {"_id": "$pass"}}]}),
                       ("aggr", {"pipe": [{"$project": {"x": "$pass"}}]})]:
        r = await st.http.post(st.crud("users", kind), json=body, headers=headers)
        assert r.status_code in (400, 403) and no_hash(r.text), (kind, body, r.text)
    # the server's own collection of hashes cannot be named at all
    for col in ("_sc_credentials", "_SC_credentials"):
        r = await st.http.post(st.crud(col, "read"), json={"find": {}}, headers=headers)
        assert r.status_code == 403 and no_hash(r.text)
    # a live query on users (realtime enabled here on purpose) sees no hash, also for new sign-ups
    token = headers["Authorization"].split()[1]
    lc = await LiveClient.connect(st.gw.ws_url, st.project, token)
    try:
        ack = await lc.subscribe("all-users", "users", st.alias, {})
        assert ack["ack"] is True and no_hash(ack)
        await signup(st, "carl")
        await lc.until(lambda: len(lc.snapshot("all-users")) >= 4)
        assert no_hash(lc.feeds) and no_hash(lc.snapshot("all-users"))
    finally:
        await lc.close()
    assert uid


async def test_realtime_on_users_is_off_unless_enabled(tmp_path: Path, nats_url: str) -> None:
    async with stack("sqlite", tmp_path, nats_url, collections={"users": {"rules": {"read": {"rule": "allow"}}}},
                     auth={"email": {"enabled": True}}) as s:
        _, headers = await signup(s)
        lc = await LiveClient.connect(s.gw.ws_url, s.project, headers["Authorization"].split()[1])
        try:
            ack = await lc.subscribe("q", "users", s.alias, {})
            assert ack["ack"] is False and "realtime is not enabled" in ack["error"]
        finally:
            await lc.close()


PROTECTED_WRITES: list[dict[str, Any]] = [
    {"$set": {"userId": "victim"}},
    {"$set": {"userId.x": 1}},
    {"$unset": {"userId": ""}},
    {"$rename": {"text": "userId"}},
    {"$rename": {"userId": "oldOwner"}},
    {"$inc": {"userId": 1}},
    {"$mul": {"userId": 2}},
    {"$min": {"userId": "a"}},
    {"$max": {"userId": "zzzz"}},
    {"$push": {"userId": "x"}},
    {"$currentDate": {"userId": True}},
    {"$set": {"meta": {"owner": "victim"}}},
    {"$set": {"meta.owner": "victim"}},
]


async def test_protected_fields_hold_against_every_operator(st: Stack) -> None:
    uid, headers = await signup(st, "owner")
    todos = st.names["todos"]
    tid = "t-" + uuid.uuid4().hex[:6]
    doc = {st.id: tid, "userId": uid, "text": "mine", "meta": {"owner": uid, "tag": "a"}}
    r = await st.http.post(st.crud(todos, "create"), json={"op": "one", "doc": doc}, headers=headers)
    assert r.status_code == 200, r.text
    for update in PROTECTED_WRITES:
        r = await st.http.post(st.crud(todos, "update"), headers=headers,
                               json={"op": "all", "find": {"userId": uid}, "update": update})
        assert r.status_code in (400, 403), (update, r.text)
    r = await st.http.post(st.crud(todos, "read"), json={"find": {"userId": uid}}, headers=headers)
    [after] = r.json()["result"]
    assert after["userId"] == uid and after["meta"] == {"owner": uid, "tag": "a"}
    # what is not protected still changes
    r = await st.http.post(st.crud(todos, "update"), headers=headers,
                           json={"op": "all", "find": {"userId": uid}, "update": {"$set": {"text": "edited"}}})
    assert r.status_code == 200, r.text


async def test_an_upsert_is_checked_against_the_create_rule(st: Stack) -> None:
    uid, headers = await signup(st, "ups")
    todos = st.names["todos"]
    # the update rule and the create rule both pass: the upsert inserts my own row
    r = await st.http.post(st.crud(todos, "update"), headers=headers, json={
        "op": "upsert", "find": {"userId": uid, st.id: "u-" + uuid.uuid4().hex[:6]},
        "update": {"$set": {"text": "x"}}})
    assert r.status_code == 200, r.text
    # a collection where owners may update but nobody may create: an upsert may not create either
    closed = st.names["closed"]
    r = await st.http.post(st.crud(closed, "update"), headers=headers, json={
        "op": "upsert", "find": {"userId": uid}, "update": {"$set": {"text": "sneaked in"}}})
    assert r.status_code in (401, 403), r.text
    r = await st.http.post(st.crud(closed, "read"), json={"find": {"userId": uid}}, headers=headers)
    assert r.status_code == 200 and r.json()["result"] == []


async def test_crud_on_users_cannot_change_what_edit_profile_owns(st: Stack) -> None:
    uid, headers = await signup(st, "eve")
    for update in [{"$set": {"role": "admin"}}, {"$rename": {"name": "role"}}, {"$set": {"email": "x@y.z"}},
                   {"$set": {"pass": "new"}}, {"$unset": {"role": ""}}]:
        r = await st.http.post(st.crud("users", "update"), headers=headers,
                               json={"op": "one", "find": {st.id: uid}, "update": update})
        assert r.status_code == 403, (update, r.text)
    r = await st.http.post(st.crud("users", "create"), headers=headers,
                           json={"op": "one", "doc": {st.id: "fake", "email": "f@x.y", "role": "admin"}})
    assert r.status_code == 403
    r = await st.http.get(f"/v1/api/{st.project}/auth/{st.alias}/profile/{uid}", headers=headers)
    assert r.json()["user"]["role"] == "user"


async def test_taking_a_victims_email_before_they_sign_up_is_refused(st: Stack) -> None:
    uid, headers = await signup(st, "squatter")
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    r = await st.http.put(f"/v1/api/{st.project}/auth/{st.alias}/edit_profile/{uid}", headers=headers,
                          json={"email": victim})
    assert r.status_code == 200, r.text
    # the victim cannot get an account under that email now, but neither can two accounts share it
    r = await st.http.post(f"/v1/api/{st.project}/auth/{st.alias}/email/signup",
                           json={"email": victim, "name": "v", "pass": "pw"})
    assert r.status_code == 409
    r = await st.http.post(f"/v1/api/{st.project}/auth/{st.alias}/email/signin", json={"email": victim, "pass": "pw-1"})
    assert r.status_code == 200 and r.json()["user"]["name"] == "squatter"


async def test_tokens_must_expire_unless_the_project_allows_otherwise(tmp_path: Path, nats_url: str) -> None:
    forever = jwt.encode({"id": "u1", "role": "user"}, SECRET, algorithm="HS256")
    expiring = jwt.encode({"id": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    rules = {"t": {"rules": {"read": {"rule": "authenticated"}}}}
    for auth, expected in (({}, 401), ({"allowTokensWithoutExpiry": True}, 200)):
        async with stack("sqlite", tmp_path, nats_url, collections=rules, auth=auth) as s:
            r = await s.http.post(s.crud("t", "read"), json={}, headers={"Authorization": f"Bearer {forever}"})
            assert r.status_code == expected, (auth, r.text)
            r = await s.http.post(s.crud("t", "read"), json={}, headers={"Authorization": f"Bearer {expiring}"})
            assert r.status_code == 200


async def test_a_live_query_ends_when_its_token_expires_and_can_be_renewed(tmp_path: Path, nats_url: str) -> None:
    rules = {"notes": {"rules": {"read": {"rule": "authenticated"}}}}
    async with stack("sqlite", tmp_path, nats_url, collections=rules) as s:
        def token(ttl: float) -> str:
            return jwt.encode({"id": "u1", "exp": int(time.time() + ttl)}, SECRET, algorithm="HS256")

        short = await LiveClient.connect(s.gw.ws_url, s.project, token(1.5))
        renewed = await LiveClient.connect(s.gw.ws_url, s.project, token(1.5))
        try:
            assert (await short.subscribe("q", "notes", s.alias, {}))["ack"] is True
            assert (await renewed.subscribe("q", "notes", s.alias, {}))["ack"] is True
            renewed.token = token(60)
            assert (await renewed.subscribe("q", "notes", s.alias, {}))["ack"] is True  # the same id: renewed
            code, reason = await asyncio.wait_for(asyncio.shield(short.closed), 10)
            assert code == 4401 and "expired" in reason
            await asyncio.sleep(1.0)
            assert not renewed.closed.done(), "a renewed live query was ended"
        finally:
            await short.close()
            await renewed.close()


async def test_one_socket_cannot_hold_unbounded_work(tmp_path: Path, nats_url: str) -> None:
    rules = {"notes": {"rules": {"read": {"rule": "allow"}}}}
    settings = {"socket_live_queries": 3, "socket_requests": 1}
    async with stack("sqlite", tmp_path, nats_url, collections=rules, settings=settings) as s:
        lc = await LiveClient.connect(s.gw.ws_url, s.project)
        try:
            for n in range(3):
                assert (await lc.subscribe(f"q{n}", "notes", s.alias, {"n": n}))["ack"] is True
            ack = await lc.subscribe("q3", "notes", s.alias, {"n": 3})
            assert ack["ack"] is False and "too many live queries" in ack["error"]
            assert (await lc.subscribe("q0", "notes", s.alias, {"n": 9}))["ack"] is True  # replacing one is fine
        finally:
            await lc.close()
        # a burst of requests: beyond the cap they are refused at once, not queued without bound
        async with websockets.connect(f"{s.gw.ws_url}/v1/api/{s.project}/socket/json") as ws:
            for i in range(20):
                await ws.send(orjson.dumps({"id": f"b{i}", "type": "realtime-subscribe", "data": {
                    "id": f"b{i}", "group": "notes", "dbType": s.alias, "where": {"i": i}}}).decode())
            replies = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(20)]
            refused = [r for r in replies if "too many requests in flight" in str(r["data"].get("error"))]
            assert refused, "twenty requests at once were all taken"
