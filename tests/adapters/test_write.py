"""Updates, deletes, Change records, versions and batches on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import Change, ReadOptions, WriteRequest
from common.errors import Conflict, InvalidQuery, NotFound
from tests.adapters.conftest import Backend, nx_bug
from tests.adapters.data import PEOPLE

UPDATES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({"name": "x", "age": 1}, {"$set": {"name": "y", "meta.city": "Oslo"}},
     {"name": "y", "age": 1, "meta": {"city": "Oslo"}}),
    ({"age": 1, "score": 1.5}, {"$inc": {"age": 2, "score": 1, "count": 3}}, {"age": 3, "score": 2.5, "count": 3}),
    ({"age": 3, "score": 1.5}, {"$mul": {"age": 3, "score": 2, "count": 5}}, {"age": 9, "score": 3.0, "count": 0}),
    ({"age": 5}, {"$min": {"age": 3, "n": 7}}, {"age": 3, "n": 7}),
    ({"age": 5}, {"$min": {"age": 8}}, {"age": 5}),
    ({"age": 5}, {"$max": {"age": 8}}, {"age": 8}),
    ({"age": 5, "name": "x"}, {"$unset": {"name": "", "nothere": ""}}, {"age": 5}),
    ({"note": "hi", "age": 1}, {"$rename": {"note": "nick"}}, {"nick": "hi", "age": 1}),
    ({"tags": ["a"]}, {"$push": {"tags": "b"}}, {"tags": ["a", "b"]}),
    ({"age": 1}, {"$push": {"tags": {"$each": ["c", "d"]}}}, {"age": 1, "tags": ["c", "d"]}),
    ({"meta": {"a": 1}}, {"$set": {"meta.b.c": 2}, "$unset": {"meta.a": 1}}, {"meta": {"b": {"c": 2}}}),
]


def _strip(b: Backend, doc: Any) -> Any:
    out = b.norm(doc)
    out.pop("id")
    return out


async def test_each_update_operator(backend: Backend) -> None:
    col = backend.col()
    for n, (before, update, after) in enumerate(UPDATES):
        doc_id = f"u{n}"
        await backend.adapter.create(col, [backend.doc({"id": doc_id, **before})])
        changes = await backend.adapter.update(col, "one", {backend.id: doc_id}, update)
        assert [(c.type, c.id) for c in changes] == [("update", doc_id)], update
        assert _strip(backend, changes[0].doc) == after, update
        stored = await backend.adapter.read(col, "one", {backend.id: doc_id}, ReadOptions())
        assert _strip(backend, stored) == after, update


async def test_current_date(backend: Backend) -> None:
    col = await backend.seed([{"id": "a", "age": 1}])
    changes = await backend.adapter.update(col, "all", {}, {"$currentDate": {"updatedAt": True}})
    stamp = changes[0].doc and changes[0].doc["updatedAt"]
    assert isinstance(stamp, str) and stamp.endswith("Z") and stamp[:2] == "20"
    stored = await backend.adapter.read(col, "one", {}, ReadOptions())
    assert stored["updatedAt"] == stamp


async def test_bad_update_operand_is_invalid(backend: Backend) -> None:
    col = await backend.seed([{"id": "a", "name": "x", "age": 1}])
    with pytest.raises(InvalidQuery):
        await backend.adapter.update(col, "all", {}, {"$inc": {"name": 1}})
    with pytest.raises(InvalidQuery):
        await backend.adapter.update(col, "all", {}, {"$push": {"age": 1}})
    with pytest.raises(InvalidQuery):
        await backend.adapter.update(col, "all", {}, {"$set": {backend.id: "b"}})
    with pytest.raises(InvalidQuery):
        await backend.adapter.update(col, "all", {}, {"name": "replacement"})
    assert _strip(backend, await backend.adapter.read(col, "one", {}, ReadOptions())) == {"name": "x", "age": 1}


async def test_update_one_all_and_missing(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    one = await backend.adapter.update(col, "one", {"userId": "u1"}, {"$set": {"text": "t"}})
    assert len(one) == 1 and one[0].id in ("a", "b")
    assert await backend.adapter.read(col, "count", {"text": "t"}, ReadOptions()) == 1
    with pytest.raises(NotFound):
        await backend.adapter.update(col, "one", {"userId": "nobody"}, {"$set": {"text": "t"}})
    assert await backend.adapter.update(col, "all", {"userId": "nobody"}, {"$set": {"text": "t"}}) == []


@nx_bug("findAndModify with upsert ignores $setOnInsert, so the new document gets an ObjectId _id")
async def test_upsert(backend: Backend) -> None:
    col = await backend.seed(PEOPLE[:1])
    find = {"userId": "u9", "age": {"$gt": 3}}
    changes = await backend.adapter.update(col, "upsert", find, {"$set": {"name": "New"}})
    assert [c.type for c in changes] == ["insert"]
    assert _strip(backend, changes[0].doc) == {"userId": "u9", "name": "New"}
    assert isinstance(changes[0].id, str) and changes[0].id
    got = await backend.adapter.read(col, "one", {"userId": "u9"}, ReadOptions())
    assert backend.norm(got) == {"id": changes[0].id, "userId": "u9", "name": "New"}
    changes = await backend.adapter.update(col, "upsert", {backend.id: "k"}, {"$inc": {"age": 1}})
    assert backend.norm(changes[0].doc) == {"id": "k", "age": 1}
    changes = await backend.adapter.update(col, "upsert", {backend.id: "k"}, {"$inc": {"age": 1}})
    assert [c.type for c in changes] == ["update"] and backend.norm(changes[0].doc) == {"id": "k", "age": 2}


async def test_delete_one_all_and_missing(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    changes = await backend.adapter.delete(col, "one", {"userId": "u2"})
    assert len(changes) == 1 and changes[0].type == "delete" and changes[0].doc is None
    with pytest.raises(NotFound):
        await backend.adapter.delete(col, "one", {"userId": "nobody"})
    assert await backend.adapter.delete(col, "all", {"userId": "nobody"}) == []
    changes = await backend.adapter.delete(col, "all", {"age": {"$gte": 25}})
    assert len(changes) + 1 + await backend.adapter.read(col, "count", {}, ReadOptions()) == 4


async def test_changes_for_every_document_and_versions_grow(backend: Backend) -> None:
    col = backend.col()
    created = await backend.adapter.create(col, [backend.doc(d) for d in PEOPLE])
    assert [(c.type, c.id) for c in created] == [("insert", d["id"]) for d in PEOPLE]
    assert [backend.norm(c.doc) for c in created] == PEOPLE
    first = {c.id: c.version for c in created}

    updated = await backend.adapter.update(col, "all", {"userId": "u1"}, {"$inc": {"age": 1}})
    assert sorted(c.id for c in updated) == ["a", "b"]
    for c in updated:
        assert c.type == "update" and c.version > first[c.id]
        assert c.doc is not None and c.doc["age"] == next(d["age"] for d in PEOPLE if d["id"] == c.id) + 1
    second = {c.id: c.version for c in updated}

    deleted = await backend.adapter.delete(col, "all", {"meta.city": "Oslo"})
    assert sorted(c.id for c in deleted) == ["a", "c"]
    for c in deleted:
        assert c.type == "delete" and c.doc is None and c.version > second.get(str(c.id), first[c.id])
    third = {c.id: c.version for c in deleted}

    again = await backend.adapter.create(col, [backend.doc({"id": "a", "name": "again"})])
    assert again[0].version > third["a"]


async def test_batch_commits_together(backend: Backend) -> None:
    col, other = backend.col(), backend.col()
    await backend.adapter.create(col, [backend.doc(d) for d in PEOPLE[:2]])
    changes = await backend.adapter.batch([
        WriteRequest("create", other, "one", backend.doc({"id": "n", "name": "N"})),
        WriteRequest("update", col, "all", find={"userId": "u1"}, update={"$set": {"text": "b"}}),
        WriteRequest("delete", col, "one", find={backend.id: "a"}),
    ])
    assert [(c.type, c.id, c.col) for c in changes] == [
        ("insert", "n", other), ("update", "a", col), ("update", "b", col), ("delete", "a", col),
    ]
    assert await backend.adapter.read(col, "count", {}, ReadOptions()) == 1


@pytest.mark.parametrize("failing", ["conflict", "notfound", "invalid"])
async def test_batch_is_all_or_nothing(backend: Backend, failing: str) -> None:
    col = await backend.seed(PEOPLE[:2])
    second: dict[str, WriteRequest] = {
        "conflict": WriteRequest("create", col, "one", backend.doc({"id": "a"})),
        "notfound": WriteRequest("update", col, "one", find={"name": "nobody"}, update={"$set": {"n": 1}}),
        "invalid": WriteRequest("update", col, "all", find={}, update={"$inc": {"name": 1}}),
    }
    expected = {"conflict": Conflict, "notfound": NotFound, "invalid": InvalidQuery}[failing]
    with pytest.raises(expected):
        await backend.adapter.batch([
            WriteRequest("create", col, "one", backend.doc({"id": "z", "name": "Z"})),
            WriteRequest("update", col, "all", find={}, update={"$set": {"text": "changed"}}),
            WriteRequest("delete", col, "one", find={backend.id: "b"}),
            second[failing],
        ])
    docs = await backend.adapter.read(col, "all", {}, ReadOptions(sort={"name": 1}))
    assert [backend.norm(d) for d in docs] == PEOPLE[:2]


def test_change_is_hashable_record() -> None:
    assert Change("delete", "x", None, 3) == Change("delete", "x", None, 3)
