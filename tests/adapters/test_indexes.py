"""Indexes on document paths of schemaless collections (`indexes:` in a collection's config): made on every
database, used by the planner for equality and `$in` (EXPLAIN), and results exactly those without them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import ReadOptions
from adapters.indexes import parse
from adapters.query import matches, validate_find
from adapters.sql import indexes as sql_indexes
from common.errors import InvalidQuery
from tests.adapters.conftest import Backend, open_backend

SCHEMALESS = [
    pytest.param("sqlite-schemaless", id="sqlite"),
    pytest.param("postgres-schemaless", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql-schemaless", id="mysql", marks=pytest.mark.mysql),
    pytest.param("mongo-fake", id="mongo-fake"),
    pytest.param("mongo-nx", id="mongo-nx"),
]
SQL = SCHEMALESS[:3]
INDEXES = ["userId", ["userId", "done"], "address.city", "n"]
LONG = "x" * 200


def docs(mongo: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(240):
        doc: dict[str, Any] = {"id": f"d{k}", "userId": f"u{k % 40}", "done": k % 3 == 0, "n": k % 7 + 1}
        if k % 5 == 0:
            doc["address"] = {"city": ["Oslo", "Rome", "Lima"][k % 3]}
        out.append(doc)
    out += [
        {"id": "num", "userId": 7, "n": "7"},  # a number where others have strings, and the other way round
        {"id": "bool", "userId": True, **({} if mongo else {"n": True})},  # nx-27017: true equals 1
        {"id": "float", "userId": "u1", "n": 1.0},
        {"id": "nul", "userId": None, "n": None},
        {"id": "none", "n": 2.5},
        {"id": "arr", "userId": ["z"] if mongo else ["u1"], "address": "Oslo"},  # Mongo: a scalar matches in arrays
        {"id": "long1", "userId": LONG + "a"},  # equal in their first 191 characters
        {"id": "long2", "userId": LONG + "b"},
    ]
    return out


FINDS: list[dict[str, Any]] = [
    {"userId": "u1"}, {"userId": 7}, {"userId": True}, {"userId": None}, {"userId": LONG + "a"},
    {"userId": {"$in": ["u1", "u2", 7]}}, {"userId": {"$in": [f"u{k}" for k in range(20)] + [LONG + "b"]}},
    {"userId": "u3", "done": True}, {"address.city": "Oslo"}, {"n": 1}, {"n": {"$in": [2.5, "7", False]}},
    {"$or": [{"userId": "u4"}, {"n": 6}]}, {"userId": {"$ne": "u1"}, "n": 3}, {"userId": {"$nin": ["u1", "u2"]}},
]


def test_the_config_entry() -> None:
    assert parse(["userId", ["userId", "done"], "a.b", "userId"]) == [("userId",), ("userId", "done"), ("a.b",)]
    bad_entries: list[Any] = ["userId", [1], [[]], ["bad name"], [["a", "a"]], ["id"], [["x"] * 9], ["a"] * 17]
    for bad in bad_entries:
        with pytest.raises(InvalidQuery):
            parse(bad)


def test_the_config_declares_them_and_refuses_a_bad_entry(tmp_path: Path) -> None:
    from gateway.config import ConfigError
    from gateway.config import parse as parse_config
    from tests.support.servers import project_config

    def config(indexes: Any) -> dict[str, Any]:
        return project_config("p", crud={"db": {"type": "sqlite", "conn": str(tmp_path / "x.db"), "collections": {
            "todos": {"indexes": indexes}}}})

    todos = parse_config(config(["userId", ["userId", "done"]]), env={}).projects["p"].crud["db"].collections["todos"]
    assert todos.indexes == [("userId",), ("userId", "done")]
    with pytest.raises(ConfigError, match=r"collections\.todos\.indexes"):
        parse_config(config(["bad name"]), env={})


@pytest.fixture(params=SCHEMALESS)
async def indexed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Backend, str]]:
    conn = request.getfixturevalue("nx_mongo_url") if request.param == "mongo-nx" else None
    async with open_backend(request.param, tmp_path, conn=conn) as b:
        col = b.col()
        b.adapter.collections[col] = {"indexes": INDEXES}  # type: ignore[attr-defined]
        await b.adapter.create(col, [b.doc(d) for d in docs(b.name.startswith("mongo"))])
        yield b, col


async def test_results_are_those_of_the_query_model(indexed: tuple[Backend, str]) -> None:
    b, col = indexed
    everything = [b.norm(d) for d in await b.adapter.read(col, "all", {}, ReadOptions())]
    assert len(everything) == len(docs(b.name.startswith("mongo")))
    for find in FINDS:
        got = {b.norm(d)["id"] for d in await b.adapter.read(col, "all", b.doc(find), ReadOptions())}
        assert got == {d["id"] for d in everything if matches(find, d)}, find
        count = await b.adapter.read(col, "count", b.doc(find), ReadOptions())
        assert count == len(got), find
    # updates and deletes find their documents through the same predicates
    changes = await b.adapter.update(col, "all", {"userId": "u5"}, {"$set": {"done": True}})
    assert len(changes) == 6
    assert len(await b.adapter.delete(col, "all", {"userId": {"$in": ["u6", "u7"]}})) == 12


async def test_mongo_indexes_are_native(indexed: tuple[Backend, str]) -> None:
    b, col = indexed
    if not b.name.startswith("mongo"):
        pytest.skip("SQL: see the EXPLAIN tests")
    c = await b.adapter._col(col)  # type: ignore[attr-defined]
    info = await c.index_information()
    keys = {tuple(field for field, _ in spec["key"]) for spec in info.values()}
    assert {("userId",), ("userId", "done"), ("address.city",), ("n",)} <= keys, info


async def plan(b: Backend, col: str, find: dict[str, Any]) -> tuple[str, str]:
    """(the compiled WHERE, the database's plan for reading with it)."""
    adapter: Any = b.adapter
    layout = await adapter.layout(col, create=False)
    c = adapter._compiler(layout)
    where = c.where(validate_find(find))
    sql = f'SELECT "id" FROM {layout.sql} WHERE {where}'  # noqa: S608 -- test SQL, validated identifiers
    d = adapter.d
    if d.name == "mysql":
        sql = sql.replace('"id"', "`id`")
        async with adapter.driver.reader() as conn:
            rows = await conn.fetch(f"EXPLAIN {sql}", c.p.values)
        return where, " ".join(str(v) for row in rows for v in row)
    if d.name == "postgres":
        async with adapter.driver.transaction() as conn:
            await conn.execute("SET LOCAL enable_seqscan = off")  # a test table is small
            rows = await conn.fetch(f"EXPLAIN {sql}", c.p.values)
        return where, "\n".join(str(r[0]) for r in rows)
    async with adapter.driver.reader() as conn:
        # A connection sees a new index once a statement reads the database (EXPLAIN alone does not)
        await conn.fetch(sql, c.p.values)
        rows = await conn.fetch(f"EXPLAIN QUERY PLAN {sql}", c.p.values)
    return where, "\n".join(str(r[-1]) for r in rows)


@pytest.mark.parametrize("find", [
    {"userId": "u1"}, {"userId": {"$in": ["u1", "u2"]}}, {"userId": {"$in": [f"u{k}" for k in range(30)]}},
    {"userId": "u3", "done": True}, {"address.city": "Lima"}, {"userId": "u1", "n": {"$gt": 2}},
], ids=["eq", "in", "in-30", "compound", "nested", "eq-and-range"])
async def test_the_planner_uses_the_index(indexed: tuple[Backend, str], find: dict[str, Any]) -> None:
    b, col = indexed
    if b.name.startswith("mongo"):
        pytest.skip("Mongo plans its own queries")
    where, text = await plan(b, col, find)
    assert "sc_ix_" in text, (where, text)


async def test_numbers_use_the_index_where_it_holds_them(indexed: tuple[Backend, str]) -> None:
    b, col = indexed
    if b.name.startswith("mongo"):
        pytest.skip("Mongo plans its own queries")
    where, text = await plan(b, col, {"n": 3})
    assert ("sc_ix_" in text) == (b.name != "mysql-schemaless"), (where, text)  # MySQL indexes strings only


@pytest.mark.parametrize("name", SQL)
async def test_without_a_declared_index_the_sql_is_unchanged(name: str, tmp_path: Path) -> None:
    async with open_backend(name, tmp_path) as b:
        col = await b.seed([{"id": "1", "userId": "u1"}])
        where, _ = await plan(b, col, {"userId": "u1"})
        assert f"({sql_indexes.expr(b.adapter.d, 'userId')} = " not in where  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", SQL)
async def test_a_table_that_already_holds_data_gets_its_index(name: str, tmp_path: Path) -> None:
    async with open_backend(name, tmp_path) as first:
        col = await first.seed([{"id": f"d{k}", "userId": f"u{k % 10}"} for k in range(100)])
        first.created.clear()  # kept for the next adapter
        async with open_backend(name, tmp_path) as second:
            second.created.append(col)
            adapter: Any = second.adapter
            adapter.collections[col] = {"indexes": ["userId"]}
            where, text = await plan(second, col, {"userId": "u3"})
            assert "sc_ix_" in text, (where, text)
            got = await adapter.read(col, "all", {"userId": "u3"}, ReadOptions())
            assert {d["id"] for d in got} == {f"d{k}" for k in range(3, 100, 10)}
            # made once: another adapter (another worker) finds it there
            async with open_backend(name, tmp_path) as third:
                third.adapter.collections[col] = {"indexes": ["userId"]}  # type: ignore[attr-defined]
                layout = await third.adapter.layout(col, create=False)  # type: ignore[attr-defined]
                assert layout is not None and layout.schemaless and layout.indexed == {"userId"}


@pytest.mark.parametrize("name", SQL)
async def test_an_index_that_cannot_be_made_leaves_queries_working(name: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> list[str]:
        return ["CREATE INDEX nope ON no_such_table (x)"]

    monkeypatch.setattr(sql_indexes, "ddl", broken)
    async with open_backend(name, tmp_path) as b:
        col = b.col()
        b.adapter.collections[col] = {"indexes": ["userId"]}  # type: ignore[attr-defined]
        await b.adapter.create(col, [{"id": "1", "userId": "u1"}, {"id": "2", "userId": "u2"}])
        layout = await b.adapter.layout(col)  # type: ignore[attr-defined]
        assert layout.indexed == frozenset()
        got = await b.adapter.read(col, "all", {"userId": "u2"}, ReadOptions())
        assert [d["id"] for d in got] == ["2"]
