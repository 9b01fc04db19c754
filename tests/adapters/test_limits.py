"""What one request may cost (`adapters.limits`): over a limit is a 400 on every backend and changes
nothing; documents as deep as reads can handle are stored and read back, deeper ones are refused."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters import deadline
from adapters.base import ReadOptions, WriteRequest
from adapters.limits import MAX_DOC_DEPTH, MAX_FIELDS, MAX_IN, MAX_SORT_KEYS
from adapters.query import matches
from common.errors import InvalidQuery
from tests.adapters.conftest import Backend, nx_bug

SEED = [
    {"id": "a", "n": 1, "age": 2**63 - 1, "score": 1e308, "name": "Ann", "meta": {"x": 1}, "tags": ["t"]},
    {"id": "b", "n": 2, "age": 2**62, "score": 2.5, "name": "Bob"},
    {"id": "c", "n": 3, "age": 2**62, "name": "Cid"},
]


@pytest.fixture(autouse=True)
def bounded() -> Iterator[None]:
    """Every request here has a deadline, as under the db worker: a server that never answers fails
    the test instead of hanging it."""
    token = deadline.set_deadline(time.monotonic() + 20)
    yield
    deadline.reset_deadline(token)


def nest(levels: int) -> Any:
    """A value with `levels` nested objects and arrays (a document holding it has levels + 1)."""
    value: Any = "leaf"
    for n in range(levels):
        value = {"a": value} if n % 2 else [value]
    return value


def nested_find(levels: int) -> dict[str, Any]:
    find: dict[str, Any] = {"n": 1}
    for n in range(levels):
        find = {"$or" if n % 2 else "$and": [find]}
    return find


async def _unchanged(b: Backend, col: str) -> None:
    docs = await b.adapter.read(col, "all", {}, ReadOptions(sort={"name": 1}))
    assert [b.norm(d) for d in docs] == SEED


async def _refused(call: Any) -> InvalidQuery:
    with pytest.raises(InvalidQuery) as info:
        await call
    assert info.value.status == 400 and info.value.message
    return info.value


@pytest.mark.parametrize(("what", "options"), [
    ("limit", ReadOptions(limit=2**63)),
    ("limit", ReadOptions(limit=2**53 + 1)),
    ("limit", ReadOptions(limit=-1)),
    ("skip", ReadOptions(skip=2**63)),
    ("skip", ReadOptions(skip=-5)),
    ("sort", ReadOptions(sort={f"f{n}": 1 for n in range(1000)})),
    ("sort", ReadOptions(sort={f"f{n}": 1 for n in range(MAX_SORT_KEYS + 1)})),
    ("select", ReadOptions(select={f"f{n}": 1 for n in range(MAX_FIELDS + 1)})),
])
async def test_extreme_read_options_are_400(backend: Backend, what: str, options: ReadOptions) -> None:
    col = await backend.seed(SEED)
    error = await _refused(backend.adapter.read(col, "all", {}, options))
    assert what in error.message
    await _unchanged(backend, col)


async def test_limits_at_their_bound_are_fine(backend: Backend) -> None:
    col = await backend.seed(SEED)
    sort = {"name": 1, **{f"f{n}": 1 for n in range(MAX_SORT_KEYS - 1)}}
    docs = await backend.adapter.read(col, "all", {}, ReadOptions(sort=sort, skip=1, limit=2**53))
    assert [backend.norm(d)["id"] for d in docs] == ["b", "c"]


BIG_FINDS: list[tuple[str, dict[str, Any]]] = [
    ("$in", {"n": {"$in": list(range(MAX_IN + 1))}}),
    ("$in/$nin values", {"n": {"$in": list(range(6000))}, "age": {"$nin": list(range(6000))}}),
    ("conditions", {"$or": [{"n": k} for k in range(1001)]}),
    ("nested", nested_find(17)),
    ("64-bit", {"n": 2**70}),
    ("64-bit", {"n": {"$in": [1, -(2**64)]}}),
    ("finite", {"score": {"$gt": float("inf")}}),
]


@pytest.mark.parametrize(("what", "find"), BIG_FINDS, ids=[w for w, _ in BIG_FINDS])
async def test_oversized_finds_are_400_everywhere(backend: Backend, what: str, find: dict[str, Any]) -> None:
    col = await backend.seed(SEED)
    a = backend.adapter
    for call in (
        a.read(col, "all", find, ReadOptions()),
        a.read(col, "count", find, ReadOptions()),
        a.update(col, "all", find, {"$set": {"name": "pwned"}}),
        a.delete(col, "all", find),
        a.aggregate(col, "all", [{"$match": find}]),
    ):
        error = await _refused(call)
        assert what in error.message, error.message
    await _unchanged(backend, col)


async def test_a_large_in_is_answered_with_the_same_semantics(backend: Backend) -> None:
    """10,000 values of mixed types: the same answer as the in-memory matcher (and the database is
    not asked 10,000 separate questions: see test_compiler for the SQL it gets)."""
    col = await backend.seed(SEED)
    values: list[Any] = [*range(3, 3 + 9_990), "Ann", "1", True, None, 2.5, 1.0, 2**62, -1.5, "b", False]
    for field in ("n", "name", "score", "age", "id", "nothere", "meta.x"):
        key = backend.id if field == "id" else field
        for op in ("$in", "$nin"):
            find = {key: {op: values}}
            got = sorted(backend.norm(d)["id"] for d in await backend.adapter.read(col, "all", find, ReadOptions()))
            expected = sorted(str(d["id"]) for d in SEED if matches(find, backend.doc(d)))
            assert got == expected, (field, op)


@pytest.mark.parametrize(("what", "pipe"), [
    ("stages", [{"$match": {}}] * 33),
    ("$skip", [{"$skip": 2**63}]),
    ("$limit", [{"$limit": 2**53 + 1}]),
    ("$limit", [{"$limit": 0}]),
    ("64-bit", [{"$group": {"_id": None, "x": {"$sum": 2**63}}}]),
    ("$group outputs", [{"$group": {"_id": None, **{f"o{n}": {"$sum": 1} for n in range(MAX_FIELDS + 1)}}}]),
    ("$project", [{"$project": {f"p{n}": 1 for n in range(MAX_FIELDS + 1)}}]),
])
async def test_oversized_pipelines_are_400(backend: Backend, what: str, pipe: list[dict[str, Any]]) -> None:
    col = await backend.seed(SEED)
    error = await _refused(backend.adapter.aggregate(col, "all", pipe))
    assert what in error.message, error.message


NX_OVERFLOW = nx_bug("an aggregation whose $sum overflows 64 bits is never answered (it cannot encode the "
                     "result): the adapter gives up at the deadline")


@pytest.mark.parametrize("pipe", [
    pytest.param([{"$group": {"_id": None, "total": {"$sum": "$age"}}}], marks=NX_OVERFLOW),  # 2^63-1 + 2 * 2^62
    pytest.param([{"$group": {"_id": None, "total": {"$sum": 2**62}}}], marks=NX_OVERFLOW),  # 3 * 2^62
    [{"$group": {"_id": None, "total": {"$sum": 1e308}}}],  # 3e308: not finite
])
async def test_an_aggregation_that_overflows_is_400(backend: Backend, pipe: list[dict[str, Any]]) -> None:
    col = await backend.seed(SEED)
    token = deadline.set_deadline(time.monotonic() + 3) if backend.name == "mongo-nx" else None
    try:
        got = await backend.adapter.aggregate(col, "all", pipe)
    except InvalidQuery as exc:
        assert "overflow" in exc.message or "out of range" in exc.message, exc.message
    else:  # MongoDB turns an overflowing $sum into a double; MySQL sums JSON numbers as DOUBLE
        doubles = ("mongo-real", "mongo-nx", "mysql-schemaless")
        assert backend.name in doubles and pipe[0]["$group"]["total"] == {"$sum": "$age"}, got
        assert isinstance(got[0]["total"], float), got
    finally:
        if token is not None:
            deadline.reset_deadline(token)
    await _unchanged(backend, col)


@pytest.mark.parametrize("update", [
    {"$inc": {"age": 1}},  # 2^63 - 1 + 1
    {"$inc": {"age": 2**62}, "$set": {"name": "x"}},
    {"$mul": {"age": 4}},
    {"$mul": {"score": 10.0}},  # 1e309: not finite
    {"$inc": {"score": 1e308}},
    {"$set": {f"f{n}": 1 for n in range(MAX_FIELDS + 1)}},
])
async def test_an_update_past_64_bits_or_too_large_is_400(backend: Backend, update: dict[str, Any]) -> None:
    col = await backend.seed(SEED)
    await _refused(backend.adapter.update(col, "one", {backend.id: "a"}, update))
    await _refused(backend.adapter.update(col, "all", {}, update))
    await _unchanged(backend, col)


async def test_writes_too_large_are_400(backend: Backend) -> None:
    col = await backend.seed(SEED)
    await _refused(backend.adapter.create(col, [{"name": f"x{n}"} for n in range(10_001)]))
    await _refused(backend.adapter.batch([WriteRequest("delete", col, "all", find={"n": 99})] * 101))
    await _unchanged(backend, col)


async def test_documents_as_deep_as_reads_handle_are_kept_and_deeper_ones_refused(backend: Backend) -> None:
    col = await backend.seed(SEED)
    deepest = nest(MAX_DOC_DEPTH - 1)  # the document that holds it is MAX_DOC_DEPTH levels deep
    a = backend.adapter
    await a.create(col, [backend.doc({"id": "deep", "meta": deepest, "name": "Zed"})])
    got = await a.read(col, "one", {"name": "Zed"}, ReadOptions())
    assert backend.norm(got) == {"id": "deep", "meta": deepest, "name": "Zed"}
    assert await a.read(col, "count", {"meta.x": 1}, ReadOptions()) == 1  # the collection still reads
    await a.delete(col, "one", {backend.id: "deep"})

    await _refused(a.create(col, [backend.doc({"id": "deeper", "meta": nest(MAX_DOC_DEPTH)})]))
    await _refused(a.create(col, [backend.doc({"id": "deeper", "meta": nest(5000)})]))  # no RecursionError
    await _refused(a.update(col, "all", {}, {"$set": {"meta": nest(MAX_DOC_DEPTH)}}))
    await _refused(a.update(col, "all", {}, {"$set": {"meta.x": nest(MAX_DOC_DEPTH - 1)}}))
    await _refused(a.update(col, "all", {}, {"$push": {"tags": nest(MAX_DOC_DEPTH - 1)}}))
    await _refused(a.update(col, "upsert", {backend.id: "new"}, {"$set": {"meta": nest(MAX_DOC_DEPTH)}}))
    await a.update(col, "one", {backend.id: "b"}, {"$set": {"meta": {"deep": nest(MAX_DOC_DEPTH - 2)}}})
    # a $rename that moves that subtree one level deeper: the result is refused, not stored
    await _refused(a.update(col, "one", {backend.id: "b"}, {"$rename": {"meta.deep": "meta.x.y"}}))
    got = await a.read(col, "one", {backend.id: "b"}, ReadOptions())
    assert backend.norm(got)["meta"] == {"deep": nest(MAX_DOC_DEPTH - 2)}
    await a.update(col, "one", {backend.id: "b"}, {"$unset": {"meta": ""}})
    await _unchanged(backend, col)


@pytest.mark.parametrize("name", ["mongo-fake", "mongo-nx"])
async def test_mongo_documents_other_tools_wrote_still_update(
    name: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    """The check of an update's result looks at depth and numbers only: a BSON value (an ObjectId,
    a date) written by another tool is left to Mongo."""
    import datetime as dt
    import uuid

    from bson import ObjectId

    from tests.adapters.conftest import open_backend

    conn = f"mongomock://{uuid.uuid4().hex}" if name == "mongo-fake" else request.getfixturevalue("nx_mongo_url")
    async with open_backend(name, tmp_path, conn=conn) as b:
        col = b.col()
        c = await b.adapter._col(col)  # type: ignore[attr-defined]
        await c.insert_many([{"_id": "x", "oid": ObjectId(), "at": dt.datetime(2024, 1, 1), "n": 1, "_v": 1}])
        changes = await b.adapter.update(col, "one", {"_id": "x"}, {"$inc": {"n": 1}})
        assert changes[0].doc is not None and changes[0].doc["n"] == 2
