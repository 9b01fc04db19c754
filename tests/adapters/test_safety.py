"""Hostile input: bad names and operators are InvalidQuery and change nothing; values are data."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import ReadOptions, WriteRequest
from common.errors import InvalidQuery
from tests.adapters.conftest import Backend
from tests.adapters.data import PEOPLE

EVIL = ["a; DROP TABLE x", "a'--", 'a"b', "a`b", "$where", "a b", "a.1", "", "a..b", "x" * 300, "_v"]
BAD_FINDS: list[dict[str, Any]] = [
    *({name: 1} for name in EVIL),
    {"$where": "this.age > 1"},
    {"$expr": {"$gt": ["$age", 1]}},
    {"$nor": [{"age": 1}]},
    {"age": {"$regex": ".*"}},
    {"age": {"$exists": True}},
    {"age": {"$gt": True}},
    {"age": {"$in": "notalist"}},
    {"age": {"$function": {"body": "1"}}},
    {"meta": {"city": "Oslo"}},
    {"tags": ["x", "y"]},
    {"$or": []},
    {"$or": "x"},
]


async def _unchanged(b: Backend, col: str) -> None:
    docs = await b.adapter.read(col, "all", {}, ReadOptions(sort={"name": 1}))
    assert [b.norm(d) for d in docs] == PEOPLE


async def test_bad_finds_are_invalid_everywhere(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    a = backend.adapter
    for find in BAD_FINDS:
        for call in (
            lambda f=find: a.read(col, "all", f, ReadOptions()),
            lambda f=find: a.update(col, "all", f, {"$set": {"text": "pwned"}}),
            lambda f=find: a.delete(col, "all", f),
            lambda f=find: a.aggregate(col, "all", [{"$match": f}]),
        ):
            with pytest.raises(InvalidQuery):
                await call()
    await _unchanged(backend, col)


async def test_bad_names_in_options_updates_and_docs(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    a = backend.adapter
    for name in EVIL:
        for options in (ReadOptions(sort={name: 1}), ReadOptions(select={name: 1}), ReadOptions(distinct=name)):
            with pytest.raises(InvalidQuery):
                await a.read(col, "distinct" if options.distinct else "all", {}, options)
        for update in ({"$set": {name: 1}}, {"$rename": {"name": name}}, {"$inc": {name: 1}}):
            with pytest.raises(InvalidQuery):
                await a.update(col, "all", {}, update)
        with pytest.raises(InvalidQuery):
            await a.create(col, [backend.doc({"id": "evil", name: 1})])
    bad_updates: list[dict[str, Any]] = [
        {"$where": {"a": 1}}, {"$setOnInsert": {"a": 1}}, {"$pull": {"tags": "x"}}, {"$set": {}},
        {"$inc": {"age": "1"}}, {"$set": {"age": 1}, "$inc": {"age": 1}},
    ]
    for update in bad_updates:
        with pytest.raises(InvalidQuery):
            await a.update(col, "all", {}, update)
    for bad_col in ("x; DROP TABLE y", "a.b", "", "1abc", "t" * 100):
        with pytest.raises(InvalidQuery):
            await a.read(bad_col, "all", {}, ReadOptions())
        with pytest.raises(InvalidQuery):
            await a.create(bad_col, [{"name": "x"}])
    with pytest.raises(InvalidQuery):
        await a.batch([
            WriteRequest("create", col, "one", backend.doc({"id": "ok"})),
            WriteRequest("update", col, "all", find={"$where": "1"}, update={"$set": {"a": 1}}),
        ])
    await _unchanged(backend, col)


async def test_hostile_values_are_plain_data(backend: Backend) -> None:
    values = ["x'; DROP TABLE users; --", 'a"b', "back\\slash", "semi;colon", "$where", "%s %% ?", "{\"$gt\": 1}",
              "null\u00e9\u4e2d"]
    col = backend.col()
    await backend.adapter.create(col, [backend.doc({"id": f"v{n}", "text": v}) for n, v in enumerate(values)])
    for n, v in enumerate(values):
        docs = await backend.adapter.read(col, "all", {"text": v}, ReadOptions())
        assert [backend.norm(d) for d in docs] == [{"id": f"v{n}", "text": v}]
    evil_id = "id'; DELETE FROM x; --"
    await backend.adapter.create(col, [backend.doc({"id": evil_id, "text": "t"})])
    got = await backend.adapter.read(col, "one", {backend.id: evil_id}, ReadOptions())
    assert backend.norm(got)["id"] == evil_id
    assert await backend.adapter.read(col, "count", {}, ReadOptions()) == len(values) + 1
