"""The CRUD API over HTTP → NATS → worker → database, with Space Cloud's bodies and answers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from gateway import tokens
from mesh import subjects
from mesh.codec import unpack
from tests.support.servers import SECRET
from tests.support.stack import Stack, database_params, stack

ALLOW_ALL = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}
OWNER = {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.find.userId"}


def collections(todos: str, locked: str) -> dict[str, Any]:
    return {
        "default": {"rules": ALLOW_ALL},
        todos: {
            "rules": {
                "create": {
                    "rule": "match",
                    "eval": "==",
                    "type": "string",
                    "f1": "args.auth.id",
                    "f2": "args.doc.userId",
                },
                "read": OWNER,
                "update": OWNER,
                "delete": OWNER,
            }
        },
        locked: {"rules": {"read": {"rule": "allow"}}},
    }


@pytest.fixture(params=database_params())
async def st(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Stack]:
    names = {"todos": col(), "locked": col()}
    async with stack(request.param, tmp_path, nats_url, collections=collections(**names)) as s:
        s.names = names
        yield s


def col() -> str:
    return "c" + uuid.uuid4().hex[:12]


def bearer(project: str, uid: str) -> dict[str, str]:
    return {
        "Authorization": "Bearer " + tokens.issue({"id": uid, "role": "user"}, secret=SECRET, project=project, ttl=60)
    }


async def post(st: Stack, c: str, op: str, body: Any, **kw: Any) -> tuple[int, Any]:
    r = await st.http.post(st.crud(c, op), json=body, **kw)
    return r.status_code, r.json()


async def test_space_cloud_bodies_and_answers(st: Stack) -> None:
    c, i = col(), st.id
    docs = [
        {i: "1", "text": "a", "n": 1, "tag": "x"},
        {i: "2", "text": "b", "n": 2, "tag": "x"},
        {i: "3", "text": "c", "n": 3, "tag": "y"},
    ]
    assert await post(st, c, "create", {"op": "all", "doc": docs}) == (200, {})
    assert await post(st, c, "create", {"op": "one", "doc": {i: "4", "text": "d", "n": 4, "tag": "y"}}) == (200, {})
    status, body = await post(
        st,
        c,
        "read",
        {"op": "all", "find": {"n": {"$gte": 2}}, "options": {"sort": {"n": -1}, "limit": 2, "select": {"text": 1}}},
    )
    assert status == 200 and [d["text"] for d in body["result"]] == ["d", "c"]
    assert await post(st, c, "read", {"op": "one", "find": {i: "2"}}) == (
        200,
        {"result": {i: "2", "text": "b", "n": 2, "tag": "x"}},
    )
    assert await post(st, c, "read", {"op": "count", "find": {"tag": "x"}}) == (200, {"result": 2})
    status, body = await post(st, c, "read", {"op": "distinct", "find": {}, "options": {"distinct": "tag"}})
    assert status == 200 and sorted(body["result"]) == ["x", "y"]
    assert await post(
        st, c, "update", {"op": "all", "find": {"tag": "x"}, "update": {"$inc": {"n": 10}, "$set": {"seen": True}}}
    ) == (200, {})
    status, body = await post(st, c, "read", {"op": "all", "find": {"seen": True}, "options": {"sort": {"n": 1}}})
    assert [d["n"] for d in body["result"]] == [11, 12]
    status, body = await post(
        st,
        c,
        "aggr",
        {"op": "all", "pipe": [{"$match": {"tag": "y"}}, {"$group": {"_id": "$tag", "total": {"$sum": "$n"}}}]},
    )
    assert status == 200 and body == {"result": [{"_id": "y", "total": 7}]}
    assert await post(st, c, "delete", {"op": "all", "find": {"tag": "y"}}) == (200, {})
    assert await post(st, c, "read", {"op": "count", "find": {}}) == (200, {"result": 2})


async def test_one_with_no_match_is_404(st: Stack) -> None:
    status, body = await post(st, col(), "read", {"op": "one", "find": {st.id: "nope"}})
    assert status == 404 and body["error"]


async def test_duplicate_id_is_409(st: Stack) -> None:
    c = col()
    assert (await post(st, c, "create", {"op": "one", "doc": {st.id: "1"}}))[0] == 200
    status, body = await post(st, c, "create", {"op": "one", "doc": {st.id: "1", "x": 2}})
    assert status == 409 and "1" in body["error"]


async def test_batch_is_all_or_nothing(st: Stack) -> None:
    c, i = col(), st.id
    await post(st, c, "create", {"op": "one", "doc": {i: "keep", "v": 1}})
    ok = {
        "reqs": [
            {"type": "create", "col": c, "op": "one", "doc": {i: "b1", "v": 1}},
            {"type": "update", "col": c, "op": "all", "find": {i: "keep"}, "update": {"$set": {"v": 2}}},
        ]
    }
    r = await st.http.post(f"/v1/api/{st.project}/crud/{st.alias}/batch", json=ok)
    assert (r.status_code, r.json()) == (200, {})
    bad = {
        "reqs": [
            {"type": "delete", "col": c, "op": "all", "find": {i: "keep"}},
            {"type": "create", "col": c, "op": "one", "doc": {i: "b1"}},  # duplicate: the delete must roll back
        ]
    }
    r = await st.http.post(f"/v1/api/{st.project}/crud/{st.alias}/batch", json=bad)
    assert r.status_code == 409
    status, body = await post(st, c, "read", {"op": "all", "find": {}, "options": {"sort": {i: 1}}})
    assert status == 200
    assert [(d[i], d["v"]) for d in body["result"]] == [("b1", 1), ("keep", 2)]


async def test_rules_per_user_and_per_document(st: Stack) -> None:
    alice, bob = bearer(st.project, "alice"), bearer(st.project, "bob")
    i = st.id
    todos, locked = st.names["todos"], st.names["locked"]
    assert (await post(st, todos, "create", {"op": "one", "doc": {i: "t1", "userId": "alice"}}, headers=alice))[
        0
    ] == 200
    status, body = await post(st, todos, "read", {"op": "all", "find": {"userId": "alice"}}, headers=alice)
    assert status == 200 and [d[i] for d in body["result"]] == ["t1"]
    assert (await post(st, todos, "read", {"op": "all", "find": {"userId": "alice"}}, headers=bob))[0] == 403
    assert (await post(st, todos, "read", {"op": "all", "find": {"userId": "alice"}}))[0] == 401
    # op all: every document is checked; one foreign document refuses the whole request
    status, _ = await post(
        st,
        todos,
        "create",
        {"op": "all", "doc": [{i: "t2", "userId": "alice"}, {i: "t3", "userId": "bob"}]},
        headers=alice,
    )
    assert status == 403
    status, body = await post(st, todos, "read", {"op": "count", "find": {"userId": "alice"}}, headers=alice)
    assert body == {"result": 1}
    # $ operators injected through a value the rule reads do not match a string
    status, _ = await post(st, todos, "read", {"op": "all", "find": {"userId": {"$ne": "x"}}}, headers=alice)
    assert status == 403
    # no rule for this op on a listed collection: deny (401 as Space Cloud), nothing written
    status, body = await post(st, locked, "create", {"op": "one", "doc": {i: "z"}})
    assert status == 401 and body == {"error": "Auth: No rule has been provided"}
    assert await post(st, locked, "read", {"op": "count", "find": {}}) == (200, {"result": 0})


@pytest.mark.parametrize(
    ("op", "body", "fragment"),
    [
        ("read", {"op": "all", "find": {"$where": "sleep(1000)"}}, "$where"),
        ("read", {"op": "all", "find": {"n": {"$regex": ".*"}}}, "$regex"),
        ("read", {"op": "all", "find": {"a; DROP TABLE x": 1}}, "a; DROP TABLE x"),
        ("read", {"op": "all", "find": []}, "find"),
        ("read", {"op": "sometimes"}, "invalid op"),
        ("read", {"op": "distinct", "find": {}}, "distinct"),
        ("read", {"op": "all", "options": {"limit": -1}}, "limit"),
        ("create", {"op": "one", "doc": [1, 2]}, "doc"),
        ("create", {"op": "all", "doc": {"x": 1}}, "doc"),
        ("update", {"op": "all", "find": {}, "update": {"$where": {"x": 1}}}, "$where"),
        ("update", {"op": "all", "find": {}}, "update"),
        ("update", {"op": "all", "find": {}, "update": {"$set": {"x; --": 1}}}, "x; --"),
        ("aggr", {"op": "all", "pipe": [{"$function": {"body": "x"}}]}, "$function"),
        ("aggr", {"op": "all", "pipe": [{"$out": "other"}]}, "$out"),
        ("aggr", {"op": "all", "pipe": {"$match": {}}}, "pipe"),
    ],
)
async def test_bad_requests_are_400_and_change_nothing(st: Stack, op: str, body: dict[str, Any], fragment: str) -> None:
    c = col()
    await post(st, c, "create", {"op": "one", "doc": {st.id: "1", "n": 1}})
    status, answer = await post(st, c, op, body)
    assert status == 400, answer
    assert fragment in answer["error"]
    assert await post(st, c, "read", {"op": "all", "find": {}}) == (200, {"result": [{st.id: "1", "n": 1}]})


async def test_malformed_json_unknown_alias_and_names(st: Stack) -> None:
    r = await st.http.post(st.crud(col(), "read"), content=b'{"op": "all", "find": ')
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = await st.http.post(f"/v1/api/{st.project}/crud/nodb/todos/read", json={})
    assert r.status_code == 404 and "nodb" in r.json()["error"]
    r = await st.http.post(st.crud("bad%20name", "read"), json={})
    assert r.status_code == 400
    r = await st.http.post(st.crud(col(), "explode"), json={})
    assert r.status_code == 404


async def test_change_events_for_every_write(st: Stack, nats_url: str) -> None:
    c, i = col(), st.id
    nc = await nats.connect(nats_url)
    events: list[dict[str, Any]] = []

    async def on(msg: Any) -> None:
        events.append(unpack(msg.data))

    await nc.subscribe(subjects.changes(st.project, st.alias, c), cb=on)
    await nc.flush()

    async def settle(n: int) -> list[dict[str, Any]]:
        for _ in range(100):
            if len(events) >= n:
                break
            await asyncio.sleep(0.02)
        out = list(events)
        events.clear()
        return out

    try:
        await post(
            st,
            c,
            "create",
            {"op": "all", "doc": [{i: "a", "u": "x", "n": 1}, {i: "b", "u": "x", "n": 2}, {i: "c", "u": "y", "n": 3}]},
        )
        inserted = await settle(3)
        assert sorted((e["type"], e["id"]) for e in inserted) == [("insert", "a"), ("insert", "b"), ("insert", "c")]
        versions = {e["id"]: e["version"] for e in inserted}
        assert all(isinstance(e["time"], int) and e["doc"][i] == e["id"] for e in inserted)

        # an update by another field: one event per affected document, with the full document
        await post(st, c, "update", {"op": "all", "find": {"u": "x"}, "update": {"$inc": {"n": 10}}})
        updated = await settle(2)
        assert sorted((e["type"], e["id"], e["doc"]["n"]) for e in updated) == [
            ("update", "a", 11),
            ("update", "b", 12),
        ]
        assert all(e["version"] > versions[e["id"]] for e in updated)
        versions.update({e["id"]: e["version"] for e in updated})

        await post(st, c, "update", {"op": "upsert", "find": {i: "d"}, "update": {"$set": {"u": "z"}}})
        [upserted] = await settle(1)
        assert upserted["type"] in ("insert", "update") and upserted["doc"] == {i: "d", "u": "z"}

        await post(st, c, "delete", {"op": "all", "find": {"u": "x"}})
        deleted = await settle(2)
        assert sorted((e["type"], e["id"], e["doc"]) for e in deleted) == [("delete", "a", None), ("delete", "b", None)]
        assert all(e["version"] > versions[e["id"]] for e in deleted)

        r = await st.http.post(
            f"/v1/api/{st.project}/crud/{st.alias}/batch",
            json={
                "reqs": [
                    {"type": "create", "col": c, "op": "one", "doc": {i: "e"}},
                    {"type": "delete", "col": c, "op": "one", "find": {i: "c"}},
                ]
            },
        )
        assert r.status_code == 200
        batch = await settle(2)
        assert sorted((e["type"], e["id"]) for e in batch) == [("delete", "c"), ("insert", "e")]

        await post(st, c, "read", {"op": "all", "find": {}})  # reads publish nothing
        assert await settle(1) == []
    finally:
        await nc.close()
