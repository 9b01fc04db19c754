"""Aggregation pipelines: the supported stages give the same results everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import InvalidQuery, NotFound
from tests.adapters.conftest import Backend, nx_bug
from tests.adapters.data import PEOPLE


async def test_group_with_every_accumulator(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    got = await backend.adapter.aggregate(col, "all", [
        {"$match": {"age": {"$gte": 18}}},
        {"$group": {"_id": "$userId", "total": {"$sum": "$age"}, "avg": {"$avg": "$age"}, "lo": {"$min": "$score"},
                    "hi": {"$max": "$age"}, "n": {"$count": {}}, "twice": {"$sum": 2}}},
        {"$sort": {"_id": 1}},
    ])
    assert got == [
        {"_id": "u1", "total": 56, "avg": 28, "lo": 3.0, "hi": 31, "n": 2, "twice": 4},
        {"_id": "u2", "total": 58, "avg": 29, "lo": 9.25, "hi": 40, "n": 2, "twice": 4},
    ]


@nx_bug("a $group _id document ({'u': '$userId', ...}) keeps its field paths as literal strings: one group")
async def test_group_null_key_and_match_after_group(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    pipe = [{"$group": {"_id": None, "n": {"$sum": 1}, "s": {"$sum": "$score"}}}]
    got = await backend.adapter.aggregate(col, "all", pipe)
    assert got == [{"_id": None, "n": 4, "s": 19.75}]
    got = await backend.adapter.aggregate(col, "all", [
        {"$group": {"_id": "$meta.city", "n": {"$sum": 1}}},
        {"$match": {"n": {"$gte": 2}}},
    ])
    assert got == [{"_id": "Oslo", "n": 2}]
    got = await backend.adapter.aggregate(col, "all", [
        {"$group": {"_id": "$meta.city", "n": {"$sum": 1}}}, {"$sort": {"n": -1, "_id": 1}},
    ])
    assert got == [{"_id": "Oslo", "n": 2}, {"_id": None, "n": 1}, {"_id": "Rome", "n": 1}]
    got = await backend.adapter.aggregate(col, "all", [
        {"$group": {"_id": {"u": "$userId", "c": "$meta.city"}, "n": {"$sum": 1}}},
        {"$match": {"_id.u": "u1"}}, {"$sort": {"_id.c": 1}},
    ])
    assert got == [{"_id": {"u": "u1", "c": "Oslo"}, "n": 1}, {"_id": {"u": "u1", "c": "Rome"}, "n": 1}]


async def test_group_on_empty_collection(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    pipe: list[dict[str, Any]] = [{"$match": {"age": 0}}, {"$group": {"_id": None, "n": {"$sum": 1}}}]
    assert await backend.adapter.aggregate(col, "all", pipe) == []
    with pytest.raises(NotFound):
        await backend.adapter.aggregate(col, "one", [{"$match": {"age": 0}}])


async def test_sort_skip_limit_project(backend: Backend) -> None:
    col = await backend.seed(PEOPLE)
    got = await backend.adapter.aggregate(col, "all", [
        {"$match": {"userId": {"$in": ["u1", "u2"]}}}, {"$sort": {"age": -1}}, {"$skip": 1}, {"$limit": 2},
        {"$project": {"name": 1, "age": 1}},
    ])
    assert [backend.norm(d) for d in got] == [
        {"id": "a", "name": "Ann", "age": 31}, {"id": "b", "name": "Bob", "age": 25},
    ]
    got = await backend.adapter.aggregate(col, "all", [
        {"$sort": {"age": 1}}, {"$limit": 3}, {"$match": {"age": {"$gt": 20}}}, {"$sort": {"name": -1}},
        {"$project": {"name": 1, backend.id: 0}},
    ])
    assert got == [{"name": "Bob"}, {"name": "Ann"}]
    one = await backend.adapter.aggregate(col, "one", [{"$sort": {"age": 1}}, {"$project": {"age": 1}}])
    assert backend.norm(one) == {"id": "d", "age": 18}


@pytest.mark.parametrize("pipe", [
    [{"$lookup": {"from": "x", "localField": "a", "foreignField": "b", "as": "c"}}],
    [{"$out": "stolen"}],
    [{"$merge": {"into": "stolen"}}],
    [{"$group": {"_id": None, "x": {"$accumulator": {"init": "function() {}"}}}}],
    [{"$group": {"_id": None, "x": {"$push": "$a"}}}],
    [{"$match": {"$where": "sleep(1000)"}}],
    [{"$match": {"$expr": {"$function": {"body": "1"}}}}],
    [{"$project": {"x": {"$function": {"body": "1"}}}}],
    [{"$sort": {"a; DROP TABLE x": 1}}],
    [{"$match": {"a": 1}, "$limit": 1}],
    "not a list",
])
async def test_refused_pipelines(backend: Backend, pipe: object) -> None:
    col = await backend.seed(PEOPLE[:1])
    with pytest.raises(InvalidQuery):
        await backend.adapter.aggregate(col, "all", pipe)  # type: ignore[arg-type]
