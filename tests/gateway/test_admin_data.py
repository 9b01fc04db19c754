"""Mission Control's admin endpoints for databases and documents (gateway/admin_data.py), over HTTP.

Every admin endpoint is a 401 without an admin token (a user's token is not one); bad input is a 400
that changes nothing; writes go through the worker like the API's, and the API sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.gateway.admin_support import AdminStack, admin_stack, sign_up
from tests.support.servers import SECRET

COLLECTIONS: dict[str, Any] = {
    "notes": {"isRealtimeEnabled": True, "rules": {"read": {"rule": "allow"}, "create": {"rule": "allow"}}},
    "typed": {"isRealtimeEnabled": False, "fields": {"title": "string"}, "rules": {"read": {"rule": "deny"}}},
    "users": {"rules": {"read": {"rule": "allow"}}},
}

ENDPOINTS = [
    ("GET", "databases"), ("PUT", "databases/x"), ("DELETE", "databases/x"), ("POST", "databases/x/test"),
    ("POST", "data/sqlite/notes/read"), ("POST", "data/sqlite/notes/create"), ("GET", "data/sqlite/notes/changes"),
    ("GET", "users/sqlite"), ("POST", "users/sqlite/u1"), ("DELETE", "users/sqlite/u1"),
    ("POST", "users/sqlite/u1/password"), ("PUT", "rules/crud/sqlite/notes/read"),
    ("DELETE", "rules/crud/sqlite/notes/read"), ("PUT", "rules/functions/calc/add"),
    ("DELETE", "rules/functions/calc/add"), ("POST", "rules/validate"), ("POST", "playground"),
    ("POST", "functions/calc/add"),
]


@pytest.fixture
async def st(tmp_path: Path, nats_url: str) -> AsyncIterator[AdminStack]:
    async with admin_stack(tmp_path, nats_url, collections=COLLECTIONS) as s:
        yield s


async def test_every_admin_endpoint_needs_an_admin_token(st: AdminStack) -> None:
    before = st.path.read_text()
    user_token = jwt.encode({"id": "u1", "role": "admin", "exp": 2**31}, SECRET, algorithm="HS256")
    for method, rest in ENDPOINTS:
        for headers in ({}, {"Authorization": f"Bearer {user_token}"}, {"Authorization": "Bearer nonsense"}):
            r = await st.http.request(method, st.url(rest), headers=headers, json={"rule": {"rule": "allow"}})
            assert r.status_code == 401, (method, rest, headers, r.text)
            assert "admin token" in r.json()["error"]
    assert st.path.read_text() == before
    # ... and an admin token from another server (another admin secret) is not one either
    other = jwt.encode({"id": "root", "role": "admin", "exp": 2**31}, "another-admin-secret-0123456789xx",
                       algorithm="HS256")
    r = await st.http.get(st.url("databases"), headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 401
    r = await st.http.get("/v1/api/config/projects/nope/databases", headers=st.admin)
    assert r.status_code == 404
    # another web page cannot use an admin's token on them (only the server's own origin and admin.allowedOrigins)
    r = await st.http.post(st.url("data/sqlite/notes/create"), json={"doc": {"id": "x"}},
                           headers={**st.admin, "Origin": "https://evil.example.com"})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    r = await st.http.post(st.url("data/sqlite/notes/read"), headers=st.admin, json={})
    assert r.json()["result"] == []


async def test_databases_list_status_and_counts(st: AdminStack) -> None:
    for i in range(3):
        assert (await st.http.post(st.crud("notes", "create"), json={"doc": {"id": f"n{i}", "text": "x"}})
                ).status_code == 200
    r = await st.http.get(st.url("databases"), headers=st.admin)
    assert r.status_code == 200, r.text
    [db] = r.json()["databases"]
    assert (db["alias"], db["type"], db["enabled"], db["connected"]) == ("sqlite", "sqlite", True, True)
    assert isinstance(db["latencyMs"], float) and db["latencyMs"] >= 0
    cols = {c["name"]: c for c in db["collections"]}
    assert cols["notes"]["count"] == 3 and cols["notes"]["realtime"] is True and cols["notes"]["typed"] is False
    assert cols["typed"]["typed"] is True and cols["typed"]["realtime"] is False and cols["typed"]["count"] == 0
    assert cols["users"]["realtime"] is False  # users are never realtime unless enabled
    assert cols["notes"]["rules"] == ["create", "read"]


async def test_connection_test_add_change_and_remove_an_alias(st: AdminStack, tmp_path: Path) -> None:
    before = st.path.read_text()
    test = st.url("databases/extra/test")
    r = await st.http.post(test, headers=st.admin, json={"type": "sqlite", "conn": str(tmp_path / "extra.db")})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["latencyMs"] >= 0
    r = await st.http.post(test, headers=st.admin, json={"type": "sqlite", "conn": str(tmp_path / "no/such/x.db")})
    assert r.status_code == 200 and r.json()["ok"] is False and "does not exist" in r.json()["error"]
    r = await st.http.post(test, headers=st.admin, json={"type": "postgres", "conn": "postgresql://u@127.0.0.1:1/x"})
    assert r.status_code == 200 and r.json()["ok"] is False and r.json()["error"]
    r = await st.http.post(test, headers=st.admin, json={"type": "postgres", "conn": "mysql://u@h/x"})
    assert r.json()["ok"] is False and "postgresql://" in r.json()["error"]
    for bad in ({"type": "oracle", "conn": "x"}, {"type": "sqlite"}, {"type": "sqlite", "conn": 5},
                {"type": "sqlite", "conn": "a.db", "enabled": "yes"},
                {"type": "postgres", "conn": "$NOT_SET_ANYWHERE"}):
        r = await st.http.post(test, headers=st.admin, json=bad)
        assert r.status_code == 400, bad
    r = await st.http.post(st.url("databases/bad.alias/test"), headers=st.admin, json={"type": "sqlite", "conn": "a"})
    assert r.status_code == 400
    assert st.path.read_text() == before

    # a failing connection is not saved
    put = st.url("databases/extra")
    r = await st.http.put(put, headers=st.admin, json={"type": "sqlite", "conn": str(tmp_path / "no/such/x.db")})
    assert r.status_code == 400 and "nothing was saved" in r.json()["error"]
    assert st.path.read_text() == before
    # unless asked not to test it
    r = await st.http.put(put, headers=st.admin, json={"type": "sqlite", "conn": "x.db", "test": "no"})
    assert r.status_code == 400

    r = await st.http.put(put, headers=st.admin, json={"type": "sqlite", "conn": str(tmp_path / "extra.db")})
    assert r.status_code == 200, r.text
    assert st.saved()["modules"]["crud"]["extra"] == {"type": "sqlite", "conn": str(tmp_path / "extra.db")}
    # applied at once: the new alias serves data (the worker follows the config)
    r = await st.http.post(st.url("data/extra/things/create"), headers=st.admin, json={"doc": {"id": "t1"}})
    assert r.status_code == 200, r.text
    r = await st.http.post(st.url("data/extra/things/read"), headers=st.admin, json={})
    assert r.json()["result"] == [{"id": "t1"}]

    # changing the connection keeps the alias's collections and rules
    sqlite = st.url("databases/sqlite")
    r = await st.http.put(sqlite, headers=st.admin, json={"type": "sqlite", "conn": str(tmp_path / "moved.db")})
    assert r.status_code == 200, r.text
    saved = st.saved()["modules"]["crud"]["sqlite"]
    assert saved["conn"] == str(tmp_path / "moved.db") and saved["collections"] == COLLECTIONS

    r = await st.http.delete(put, headers=st.admin)
    assert r.status_code == 200 and "extra" not in st.saved()["modules"]["crud"]
    assert (await st.http.delete(put, headers=st.admin)).status_code == 404
    r = await st.http.post(st.url("data/extra/things/read"), headers=st.admin, json={})
    assert r.status_code == 404


async def test_browse_and_edit_documents_as_the_api_sees_them(st: AdminStack, caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    caplog.set_level(logging.INFO, logger="space_cloud.admin")
    data = st.url("data/sqlite/notes")
    docs = [{"id": f"n{i:02d}", "n": i, "tag": "even" if i % 2 == 0 else "odd", "big": "x" * 2000} for i in range(12)]
    r = await st.http.post(f"{data}/create", headers=st.admin, json={"doc": docs})
    assert r.status_code == 200, r.text
    r = await st.http.post(f"{data}/read", headers=st.admin, json={
        "find": {"tag": "even"}, "options": {"sort": {"n": -1}, "skip": 1, "limit": 2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["id"] for d in body["result"]] == ["n08", "n06"] and body["count"] == 6 and body["idField"] == "id"
    assert len(body["result"][0]["big"]) == 2000

    r = await st.http.post(f"{data}/update", headers=st.admin, json={
        "op": "one", "find": {"id": "n03"}, "update": {"$set": {"text": "edited"}, "$unset": {"big": ""}}})
    assert r.status_code == 200, r.text
    r = await st.http.post(st.crud("notes", "read"), json={"find": {"id": "n03"}, "op": "one"})
    assert r.status_code == 200 and r.json()["result"] == {"id": "n03", "n": 3, "tag": "odd", "text": "edited"}

    r = await st.http.post(f"{data}/delete", headers=st.admin, json={"op": "all", "find": {"tag": "odd"}})
    assert r.status_code == 200
    # every write is logged with the admin's name
    written = [r.getMessage() for r in caplog.records if r.name == "space_cloud.admin"]
    assert written == [f"admin root: create (12 documents) on {st.project}/sqlite/notes",
                       f"admin root: update (one) on {st.project}/sqlite/notes",
                       f"admin root: delete (all) on {st.project}/sqlite/notes"]
    r = await st.http.post(st.crud("notes", "read"), json={"op": "count"})
    assert r.json()["result"] == 6
    # a name is the collection the database would use (SQLite folds case), as for the API
    r = await st.http.post(st.url("data/sqlite/NOTES/read"), headers=st.admin, json={})
    assert r.json()["count"] == 6

    # rules do not apply to the admin (typed's read rule denies)
    assert (await st.http.post(st.crud("typed", "read"), json={})).status_code == 401
    r = await st.http.post(st.url("data/sqlite/typed/create"), headers=st.admin,
                           json={"doc": {"id": "t", "title": "T"}})
    assert r.status_code == 200
    r = await st.http.post(st.url("data/sqlite/typed/read"), headers=st.admin, json={})
    assert r.json()["result"] == [{"id": "t", "title": "T"}]


@pytest.mark.parametrize(("kind", "body", "fragment"), [
    ("read", {"find": {"n": {"$regex": "x"}}}, "$regex"),
    ("read", {"options": {"limit": 0}}, "options.limit"),
    ("read", {"options": {"limit": 501}}, "options.limit"),
    ("read", {"options": {"distinct": "tag"}}, "distinct"),
    ("read", {"options": "all"}, "options"),
    ("create", {"doc": "nope"}, "doc"),
    ("update", {"find": {"id": "n1"}}, "update"),
    ("update", {"find": {"id": "n1"}, "update": {"$set": {"id": "other"}}}, "id"),
    ("delete", {"op": "some"}, "op"),
])
async def test_bad_input_is_400_and_changes_nothing(st: AdminStack, kind: str, body: dict[str, Any],
                                                    fragment: str) -> None:
    await st.http.post(st.url("data/sqlite/notes/create"), headers=st.admin, json={"doc": {"id": "n1", "n": 1}})
    r = await st.http.post(st.url(f"data/sqlite/notes/{kind}"), headers=st.admin, json=body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]
    r = await st.http.post(st.url("data/sqlite/notes/read"), headers=st.admin, json={})
    assert r.json()["result"] == [{"id": "n1", "n": 1}]


async def test_names_and_the_servers_own_collections(st: AdminStack) -> None:
    r = await st.http.post(st.url("data/sqlite/notes/upsert"), headers=st.admin, json={})
    assert r.status_code == 404
    r = await st.http.post(st.url("data/nope/notes/read"), headers=st.admin, json={})
    assert r.status_code == 404
    r = await st.http.post(st.url("data/sqlite/bad name/read"), headers=st.admin, json={})
    assert r.status_code == 400
    await sign_up(st, "ann@example.com")
    for kind in ("read", "create", "delete"):
        r = await st.http.post(st.url(f"data/sqlite/_sc_credentials/{kind}"), headers=st.admin,
                               json={"doc": {"id": "x"}} if kind == "create" else {})
        assert r.status_code == 403, kind
        assert "reserved" in r.json()["error"]


async def test_users_in_the_data_view_have_no_hash_and_keep_their_accounts(st: AdminStack) -> None:
    user = (await sign_up(st, "ann@example.com"))["user"]
    users = st.url("data/sqlite/users")
    r = await st.http.post(f"{users}/read", headers=st.admin, json={})
    assert r.status_code == 200
    [seen] = r.json()["result"]
    assert seen["email"] == "ann@example.com" and "pass" not in seen and "hash" not in json.dumps(seen)
    for kind, body in (("create", {"doc": {"id": "x", "email": "x@example.com"}}),
                       ("delete", {"find": {"id": user["id"]}}),
                       ("update", {"find": {"id": user["id"]}, "update": {"$set": {"email": "evil@example.com"}}}),
                       ("update", {"find": {"id": user["id"]}, "update": {"$set": {"pass": "plain"}}}),
                       ("update", {"find": {"id": user["id"]}, "update": {"$set": {"role": "admin"}}})):
        r = await st.http.post(f"{users}/{kind}", headers=st.admin, json=body)
        assert r.status_code == 403, (kind, body)
        assert "users view" in r.json()["error"] or "sign-up" in r.json()["error"]
    # other fields are data like any other
    r = await st.http.post(f"{users}/update", headers=st.admin,
                           json={"find": {"id": user["id"]}, "update": {"$set": {"name": "Anne"}}})
    assert r.status_code == 200
    r = await st.http.post(f"/v1/api/{st.project}/auth/{st.alias}/email/signin",
                           json={"email": "ann@example.com", "pass": "pw-123456"})
    assert r.status_code == 200 and r.json()["user"]["name"] == "Anne"


async def test_the_change_stream_tells_of_every_write(st: AdminStack) -> None:
    lines: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def follow() -> None:
        async with st.http.stream("GET", st.url("data/sqlite/Notes/changes"), headers=st.admin) as r:
            assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
            async for line in r.aiter_lines():
                if line.strip():
                    lines.append(json.loads(line))
                    ready.set()

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(ready.wait(), 5)
        assert lines == [{"type": "ready"}]
        assert (await st.http.post(st.crud("notes", "create"), json={"doc": {"id": "live1"}})).status_code == 200
        await st.http.post(st.url("data/sqlite/notes/delete"), headers=st.admin, json={"find": {"id": "live1"}})
        for _ in range(100):
            if len(lines) >= 3:
                break
            await asyncio.sleep(0.05)
        assert lines[1:] == [{"type": "insert", "id": "live1"}, {"type": "delete", "id": "live1"}]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    r = await st.http.get(st.url("data/sqlite/_sc_credentials/changes"), headers=st.admin)
    assert r.status_code == 403
