"""CRUD through the client against the running server, on every database: the same answers everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

import common.errors as errors
from sdk.client import API, Where, and_, cond, or_

from .conftest import Target, unique


def ids(docs: list[dict[str, Any]], field: str) -> list[str]:
    return [d[field] for d in docs]


async def seed(api: API, t: Target) -> str:
    col = unique()
    await api.db(t.alias).insert(col).docs([
        {t.id: "a", "name": "ann", "n": 1, "tag": "x", "meta": {"lvl": 1}},
        {t.id: "b", "name": "bob", "n": 2, "tag": "y", "meta": {"lvl": 2}},
        {t.id: "c", "name": "cid", "n": 3, "tag": "x", "meta": {"lvl": 3}},
        {t.id: "d", "name": "dan", "n": 4, "tag": "z", "meta": {"lvl": 4}},
    ])
    return col


async def test_reads_with_conditions(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = await seed(api, target)

    async def get(*conditions: Where) -> list[dict[str, Any]]:
        return await db.get(col).where(*conditions).sort(i)

    assert ids(await get(cond("tag", "==", "x")), i) == ["a", "c"]
    assert ids(await get(cond("tag", "!=", "x")), i) == ["b", "d"]
    assert ids(await get(cond("n", ">", 2)), i) == ["c", "d"]
    assert ids(await get(cond("n", ">=", 2), cond("n", "<", 4)), i) == ["b", "c"]
    assert ids(await get(cond("n", "<=", 1)), i) == ["a"]
    assert ids(await get(cond("tag", "in", ["y", "z"])), i) == ["b", "d"]
    assert ids(await get(cond("tag", "notIn", ["x", "y"])), i) == ["d"]
    assert ids(await get(or_(cond("n", "==", 1), and_(cond("tag", "==", "x"), cond("n", ">", 1)))), i) == ["a", "c"]
    assert ids(await get(cond("meta.lvl", ">", 3)), i) == ["d"]
    assert ids(await get(), i) == ["a", "b", "c", "d"]

    page = await db.get(col).sort("-n").skip(1).limit(2)
    assert ids(page, i) == ["c", "b"]
    picked = await db.get(col).where(cond(i, "==", "b")).select({"name": 1})
    assert picked == [{i: "b", "name": "bob"}]
    assert await db.get_one(col).where(cond("name", "==", "cid")).select({"n": 1}) == {i: "c", "n": 3}
    assert await db.count(col).where(cond("tag", "==", "x")) == 2
    assert await db.count(col) == 4
    assert sorted(await db.distinct(col).distinct("tag")) == ["x", "y", "z"]
    assert sorted(await db.get(col).where(cond("n", ">", 1)).distinct("tag")) == ["x", "y", "z"]
    assert await db.get(col).where(cond("n", ">", 3)).count() == 1
    assert await db.get(col).where(cond("n", "==", 2)).one() == {i: "b", "name": "bob", "n": 2, "tag": "y",
                                                              "meta": {"lvl": 2}}
    assert len(await db.get(col).all()) == 4


async def test_every_update_operator(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).doc({i: "1", "n": 10, "m": 3, "hi": 5, "lo": 5, "tags": ["a"], "old": "o",
                              "gone": 1, "nest": {"k": 1}})
    where = cond(i, "==", "1")
    await (db.update_one(col).where(where).set({"s": "set", "nest.k": 2}).inc({"n": 5, "fresh": 2})
           .mul({"m": 4}).max({"hi": 9}).min({"lo": 1}).push({"tags": "b"}).remove("gone")
           .rename({"old": "renamed"}).current_date("d").current_timestamp("ts"))
    doc = await db.get_one(col).where(where)
    ts, d = doc.pop("ts"), doc.pop("d")
    assert doc == {i: "1", "s": "set", "nest": {"k": 2}, "n": 15, "fresh": 2, "m": 12, "hi": 9, "lo": 1,
                   "tags": ["a", "b"], "renamed": "o"}
    assert isinstance(ts, int) and ts > 1_600_000_000_000
    assert datetime.fromisoformat(str(d).replace("Z", "+00:00")).year >= 2024
    # max/min that do not win leave the field alone; $push with $each appends several
    await db.update(col).where(where).max({"hi": 1}).min({"lo": 7}).push({"tags": {"$each": ["c", "d"]}})
    doc = await db.get_one(col).where(where).select({"hi": 1, "lo": 1, "tags": 1})
    assert (doc["hi"], doc["lo"], doc["tags"]) == (9, 1, ["a", "b", "c", "d"])


async def test_update_all_one_upsert_and_deletes(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = await seed(api, target)
    await db.update(col).where(cond("tag", "==", "x")).set({"hit": True})
    assert ids(await db.get(col).where(cond("hit", "==", True)).sort(i), i) == ["a", "c"]
    await db.update_one(col).where(cond("tag", "==", "x")).inc({"n": 100})
    bumped = await db.get(col).where(cond("n", ">", 100))
    assert len(bumped) == 1 and bumped[0][i] in ("a", "c"), "update_one changes one document"
    with pytest.raises(errors.NotFound):
        await db.update_one(col).where(cond("tag", "==", "none")).set({"x": 1})

    await db.upsert(col).where(cond(i, "==", "e"), cond("tag", "==", "w")).set({"name": "eve"})
    assert await db.get_one(col).where(cond(i, "==", "e")) == {i: "e", "tag": "w", "name": "eve"}
    await db.upsert(col).where(cond(i, "==", "e")).set({"name": "eva"})
    assert (await db.get_one(col).where(cond(i, "==", "e")))["name"] == "eva"
    assert await db.count(col) == 5

    await db.delete_one(col).where(cond("name", "==", "bob"))
    assert await db.count(col) == 4
    await db.delete(col).where(cond("n", "<", 4))  # the x that was not bumped; e has no n
    assert sorted(ids(await db.get(col), i)) == sorted(["d", "e", bumped[0][i]])
    with pytest.raises(errors.NotFound):
        await db.delete_one(col).where(cond(i, "==", "nope"))
    await db.delete(col)
    assert await db.count(col) == 0


async def test_insert_without_id_gets_one_and_duplicates_conflict(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).one({"text": "no id"})
    doc = await db.get_one(col)
    assert doc["text"] == "no id" and isinstance(doc[i], str) and doc[i]
    await db.insert(col).doc({i: "dup"})
    with pytest.raises(errors.Conflict) as info:
        await db.insert(col).doc({i: "dup", "again": True})
    assert info.value.status == 409 and info.value.message
    assert await db.count(col) == 2


async def test_batch_is_all_or_nothing(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    a, b = unique(), unique()
    await db.insert(a).docs([{i: "1", "n": 1}, {i: "2", "n": 2}])
    await (db.begin_batch()
           .add(db.insert(b).doc({i: "x", "from": "batch"}))
           .add(db.update(a).where(cond(i, "==", "1")).set({"n": 10}))
           .add(db.delete(a).where(cond(i, "==", "2"))))
    assert await db.get(a) == [{i: "1", "n": 10}]
    assert await db.get(b) == [{i: "x", "from": "batch"}]

    failing = (db.begin_batch()
               .add(db.update(a).where(cond(i, "==", "1")).set({"n": 99}))
               .add(db.insert(b).doc({i: "x"})))  # duplicate id: the whole batch fails
    with pytest.raises(errors.Conflict):
        await failing.apply()
    assert await db.get(a) == [{i: "1", "n": 10}], "nothing of a failed batch is applied"


async def test_aggregation(api: API, target: Target) -> None:
    db = api.db(target.alias)
    col = await seed(api, target)
    pipe: list[dict[str, Any]] = [{"$match": {"n": {"$gte": 2}}}, {"$group": {"_id": "$tag", "total": {"$sum": "$n"}}},
            {"$sort": {"_id": 1}}]
    assert await db.aggr(col).pipe(pipe) == [{"_id": "x", "total": 3}, {"_id": "y", "total": 2},
                                              {"_id": "z", "total": 4}]
    assert await db.aggr_one(col).pipe(pipe) == {"_id": "x", "total": 3}
    counted = await db.aggr(col).pipe([{"$group": {"_id": None, "n": {"$sum": 1}}}])
    assert [d["n"] for d in counted] == [4]
