"""What the client sends and how it reads answers, without a server (httpx.MockTransport).

Pins the wire: every builder's URL and body, the where → find translation, the token header,
`call`'s timeout in ms, and that every error status becomes the right class of the one tree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

import common.errors as errors
from sdk.client import API, and_, cond, generate_find, or_


class Recorder:
    """A fake server: records requests and answers with the next queued (status, body)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[tuple[int, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answers.pop(0) if self.answers else (200, {})
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    def last(self) -> tuple[str, str, Any]:
        """The last request: method, path, JSON body."""
        r = self.requests[-1]
        return r.method, r.url.path, orjson.loads(r.content) if r.content else None


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def api(rec: Recorder) -> AsyncIterator[API]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(rec)) as http:
        yield API("proj", "http://server:4122", http=http)


# -- conditions --------------------------------------------------------------------------------

def test_conditions_translate_as_space_api_does() -> None:
    assert generate_find(cond("a", "==", 1)) == {"a": 1}
    assert generate_find(cond("a", "!=", 1)) == {"a": {"$ne": 1}}
    for op, mongo in ((">", "$gt"), ("<", "$lt"), (">=", "$gte"), ("<=", "$lte")):
        assert generate_find(cond("n", op, 3)) == {"n": {mongo: 3}}
    assert generate_find(cond("t", "in", ("x", "y"))) == {"t": {"$in": ["x", "y"]}}
    assert generate_find(cond("t", "notIn", ["x"])) == {"t": {"$nin": ["x"]}}
    assert generate_find(and_(cond("n", ">", 1), cond("n", "<", 9), cond("u", "==", "me"))) == {
        "n": {"$gt": 1, "$lt": 9}, "u": "me"}
    assert generate_find(and_(cond("n", "==", 1), cond("n", "!=", 2))) == {"n": {"$eq": 1, "$ne": 2}}
    assert generate_find(or_(cond("a", "==", 1), and_(cond("b", "==", 2), cond("c", ">", 0)))) == {
        "$or": [{"a": 1}, {"b": 2, "c": {"$gt": 0}}]}
    two_ors = and_(or_(cond("a", "==", 1), cond("b", "==", 1)), or_(cond("c", "==", 1), cond("d", "==", 1)))
    assert generate_find(two_ors) == {"$and": [{"$or": [{"a": 1}, {"b": 1}]}, {"$or": [{"c": 1}, {"d": 1}]}]}
    assert generate_find(and_({"raw": {"$gte": 2}}, cond("x.y", "==", True))) == {"raw": {"$gte": 2}, "x.y": True}


def test_bad_conditions_are_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown operator"):
        cond("a", "=", 1)
    with pytest.raises(ValueError, match="list"):
        cond("a", "in", 1)
    with pytest.raises(TypeError, match="not a condition"):
        generate_find(42)  # type: ignore[arg-type]


# -- builders ----------------------------------------------------------------------------------

async def test_reads_send_space_api_bodies(api: API, rec: Recorder) -> None:
    db = api.db("sql-postgres")
    rec.answers = [(200, {"result": [{"id": "1"}]})]
    docs = await db.get("todos").where(cond("u", "==", "me"), cond("n", ">", 3)).select({"text": 1}) \
        .sort("text", "-n").skip(5).limit(10)
    assert docs == [{"id": "1"}]
    assert rec.last() == ("POST", "/v1/api/proj/crud/sql-postgres/todos/read", {
        "op": "all", "find": {"u": "me", "n": {"$gt": 3}},
        "options": {"select": {"text": 1}, "sort": {"text": 1, "n": -1}, "skip": 5, "limit": 10}})
    rec.answers = [(200, {"result": {"id": "1"}})]
    assert await db.get_one("todos").where(cond("id", "==", "1")) == {"id": "1"}
    assert rec.last()[2] == {"op": "one", "find": {"id": "1"}, "options": {}}
    rec.answers = [(200, {"result": 7})]
    assert await db.count("todos").apply() == 7
    assert rec.last()[2]["op"] == "count"
    rec.answers = [(200, {"result": ["a", "b"]})]
    assert await db.distinct("todos").where().distinct("cat") == ["a", "b"]
    assert rec.last()[2] == {"op": "distinct", "find": {}, "options": {"distinct": "cat"}}
    await db.get("todos").skip(3)
    assert rec.last()[2]["options"] == {"skip": 3, "limit": 20}  # as space-api
    rec.answers = [(200, {"result": [{"_id": "u", "n": 2}]})]
    pipe: list[dict[str, Any]] = [{"$match": {"done": False}}, {"$group": {"_id": "$u", "n": {"$sum": 1}}}]
    assert await db.aggr("todos").pipe(pipe) == [{"_id": "u", "n": 2}]
    assert rec.last() == ("POST", "/v1/api/proj/crud/sql-postgres/todos/aggr", {"op": "all", "pipe": pipe})
    await db.aggr_one("todos").pipe(pipe)
    assert rec.last()[2]["op"] == "one"


async def test_writes_send_every_update_operator(api: API, rec: Recorder) -> None:
    db = api.db("mongo")
    await db.insert("todos").doc({"_id": "1", "t": "x"})
    assert rec.last() == ("POST", "/v1/api/proj/crud/mongo/todos/create", {"op": "one", "doc": {"_id": "1", "t": "x"}})
    await db.insert("todos").all([{"t": 1}, {"t": 2}])
    assert rec.last()[2] == {"op": "all", "doc": [{"t": 1}, {"t": 2}]}
    await (db.update_one("todos").where(cond("_id", "==", "1"))
           .set({"a": 1}).set({"b.c": 2}).inc({"n": 1}).mul({"m": 2}).max({"hi": 9}).min({"lo": 0})
           .push({"tags": {"$each": ["p", "q"]}}).remove("old", "older").rename({"from": "to"})
           .current_date("d").current_timestamp("ts"))
    assert rec.last() == ("POST", "/v1/api/proj/crud/mongo/todos/update", {
        "op": "one", "find": {"_id": "1"}, "update": {
            "$set": {"a": 1, "b.c": 2}, "$inc": {"n": 1}, "$mul": {"m": 2}, "$max": {"hi": 9}, "$min": {"lo": 0},
            "$push": {"tags": {"$each": ["p", "q"]}}, "$unset": {"old": "", "older": ""},
            "$rename": {"from": "to"},
            "$currentDate": {"d": {"$type": "date"}, "ts": {"$type": "timestamp"}}}})
    await db.update("todos").set({"x": 1})
    assert rec.last()[2] == {"op": "all", "find": {}, "update": {"$set": {"x": 1}}}
    await db.upsert("todos").where(cond("_id", "==", "9")).set({"x": 1})
    assert rec.last()[2]["op"] == "upsert"
    await db.delete("todos").where(cond("n", "<", 0))
    assert rec.last() == ("POST", "/v1/api/proj/crud/mongo/todos/delete", {"op": "all", "find": {"n": {"$lt": 0}}})
    await db.delete_one("todos")
    assert rec.last()[2] == {"op": "one", "find": {}}


async def test_batch_carries_type_and_collection(api: API, rec: Recorder) -> None:
    db = api.db("sqlite")
    batch = db.begin_batch().add(db.insert("a").doc({"id": "1"})) \
        .add(db.update("b").where(cond("id", "==", "2")).set({"done": True})) \
        .add(db.delete("c").where(cond("id", "==", "3")))
    await batch
    assert rec.last() == ("POST", "/v1/api/proj/crud/sqlite/batch", {"reqs": [
        {"type": "create", "col": "a", "op": "one", "doc": {"id": "1"}},
        {"type": "update", "col": "b", "op": "all", "find": {"id": "2"}, "update": {"$set": {"done": True}}},
        {"type": "delete", "col": "c", "op": "all", "find": {"id": "3"}}]})
    with pytest.raises(ValueError, match="one database"):
        db.begin_batch().add(api.db("mongo").insert("a").doc({}))


async def test_token_call_and_users(api: API, rec: Recorder) -> None:
    await api.db("sqlite").get("t")
    assert "authorization" not in rec.requests[-1].headers
    api.set_token("jwt-1")
    rec.answers = [(200, {"result": {"ok": 1}})]
    assert await api.call("svc", "fn", {"x": 1}, timeout=2.5) == {"ok": 1}
    assert rec.requests[-1].headers["authorization"] == "Bearer jwt-1"
    assert rec.last() == ("POST", "/v1/api/proj/functions/svc/fn", {"params": {"x": 1}, "timeout": 2500})
    db = api.db("sqlite")
    rec.answers = [(200, {"user": {"id": "u1", "email": "a@b.c"}, "token": "t"})]
    me = await db.sign_up("a@b.c", "Ada", "pw")
    assert (me.user_id, me.token) == ("u1", "t")
    assert rec.last() == ("POST", "/v1/api/proj/auth/sqlite/email/signup",
                        {"email": "a@b.c", "name": "Ada", "pass": "pw", "role": "user"})
    rec.answers = [(200, {"user": {"_id": "u2"}, "token": "t2"})]
    assert (await db.sign_in("a@b.c", "pw")).user_id == "u2"
    assert rec.last() == ("POST", "/v1/api/proj/auth/sqlite/email/signin", {"email": "a@b.c", "pass": "pw"})
    rec.answers = [(200, {"user": {"id": "u/1"}})]
    assert await db.profile("u/1") == {"id": "u/1"}
    assert rec.requests[-1].url.raw_path == b"/v1/api/proj/auth/sqlite/profile/u%2F1"
    rec.answers = [(200, {"users": [{"id": "u1"}]})]
    assert await db.profiles() == [{"id": "u1"}]
    await db.edit_profile("u1", name="Bo")
    assert rec.last() == ("PUT", "/v1/api/proj/auth/sqlite/edit_profile/u1", {"update": {"$set": {"name": "Bo"}}})
    with pytest.raises(ValueError):
        await db.edit_profile("u1")


@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequest), (401, errors.Unauthorized), (403, errors.Forbidden), (404, errors.NotFound),
    (409, errors.Conflict), (413, errors.PayloadTooLarge), (429, errors.TooManyAttempts),
    (500, errors.InternalError), (501, errors.NotImplementedYet), (503, errors.ServiceUnavailable),
    (504, errors.Timeout), (418, errors.SpaceCloudError),
])
async def test_every_error_status_raises_its_class(api: API, rec: Recorder, status: int,
                                                   cls: type[errors.SpaceCloudError]) -> None:
    rec.answers = [(status, {"error": f"the server says {status}"})]
    with pytest.raises(cls) as info:
        await api.db("sqlite").get("t")
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.message == f"the server says {status}"


async def test_odd_error_bodies_still_carry_a_message(api: API, rec: Recorder) -> None:
    rec.answers = [(404, {"detail": "Not Found"}), (502, b"<html>bad gateway</html>"), (200, b"not json")]
    with pytest.raises(errors.NotFound, match="Not Found"):
        await api.db("sqlite").profiles()
    with pytest.raises(errors.SpaceCloudError, match="bad gateway") as info:
        await api.db("sqlite").get("t")
    assert info.value.status == 502
    with pytest.raises(errors.SpaceCloudError, match="not JSON"):
        await api.db("sqlite").get("t")


async def test_network_failures_are_translated() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler, cls in ((refuse, errors.ServiceUnavailable), (slow, errors.Timeout)):
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            api = API("proj", "http://server:4122", http=http)
            with pytest.raises(cls) as info:
                await api.db("sqlite").get("t")
            assert isinstance(info.value.__cause__, httpx.TransportError)


def test_api_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="http"):
        API("p", "localhost:4122")
    with pytest.raises(ValueError, match="project"):
        API("", "http://localhost")
