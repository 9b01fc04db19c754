"""Tenant namespaces: projects sharing one database, schema or SQLite file never see each other's
documents (users included); `table:` keeps a table made before namespaces; reads make no tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.base import ReadOptions
from adapters.names import collection_key
from adapters.namespaces import mongo_database, mongo_prefix, pg_schema, prefixed_table
from common.errors import InvalidQuery, NotFound
from tests.adapters.conftest import Backend, open_backend

R = ReadOptions()
SHARED = [
    pytest.param("sqlite-schemaless", id="sqlite"),
    pytest.param("postgres-schemaless", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql-schemaless", id="mysql", marks=pytest.mark.mysql),
    pytest.param("mongo-fake", id="mongo-fake"),
    pytest.param("mongo-nx", id="mongo-nx", marks=pytest.mark.xfail(strict=True, reason=(
        "nx-27017 refuses '.' in collection names, so a project cannot write to a database the conn URI "
        "names for another project (MongoDB allows the prefix)"))),
]
SQL = [p for p in SHARED if not p.id.startswith("mongo")]  # type: ignore[union-attr]


def _fresh() -> str:
    return "p" + uuid.uuid4().hex[:10]


async def _drop_schemas(b: Backend, namespaces: list[str]) -> None:
    if b.adapter.kind == "postgres":
        async with b.adapter.driver.transaction() as conn:  # type: ignore[attr-defined]
            for ns in namespaces:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{pg_schema(ns)}" CASCADE')


@asynccontextmanager
async def tenants(
    name: str, tmp_path: Path, request: pytest.FixtureRequest, namespaces: list[str], **kwargs: Any
) -> AsyncIterator[list[Backend]]:
    """One backend per namespace, all on the same database (file, server, Mongo database)."""
    conn = {"mongo-fake": f"mongomock://{uuid.uuid4().hex}"}.get(name)
    if name == "mongo-nx":
        conn = request.getfixturevalue("nx_mongo_url")
    async with AsyncExitStack() as stack:
        backends = [
            await stack.enter_async_context(open_backend(name, tmp_path, conn=conn, namespace=ns, **kwargs))
            for ns in namespaces
        ]
        try:
            yield backends
        finally:
            for b in backends:
                b.created += ["users", "todos"]
            await _drop_schemas(backends[0], namespaces)


@pytest.mark.parametrize("name", SHARED)
@pytest.mark.parametrize("pair", ["different", "case"])
async def test_two_projects_on_one_database_share_nothing(
    name: str, pair: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    first = _fresh()
    second = _fresh() if pair == "different" else first.upper()
    async with tenants(name, tmp_path, request, [first, second]) as (a, b):
        await a.adapter.create("users", [a.doc({"id": "u1", "email": "ann@a.io", "role": "admin"})])
        await a.adapter.create("todos", [a.doc({"id": "t1", "text": "a's", "userId": "u1"})])
        for col in ("users", "todos"):
            assert await b.adapter.read(col, "all", {}, R) == []
            assert await b.adapter.read(col, "count", {}, R) == 0
            assert await b.adapter.read(col, "distinct", {}, ReadOptions(distinct="userId")) == []
            with pytest.raises(NotFound):
                await b.adapter.read(col, "one", {}, R)
            assert await b.adapter.aggregate(col, "all", [{"$group": {"_id": None, "n": {"$sum": 1}}}]) == []
            assert await b.adapter.update(col, "all", {}, {"$set": {"role": "owned"}}) == []
            assert await b.adapter.delete(col, "all", {}) == []
        # the same ids in the other project are no conflict, and writes there stay there
        await b.adapter.create("users", [b.doc({"id": "u1", "email": "bob@b.io", "role": "user"})])
        await b.adapter.update("users", "all", {}, {"$set": {"role": "admin"}})
        await b.adapter.update("todos", "upsert", {b.id: "t1"}, {"$set": {"text": "b's"}})
        assert [a.norm(d) for d in await a.adapter.read("users", "all", {}, R)] == [
            {"id": "u1", "email": "ann@a.io", "role": "admin"}
        ]
        assert [a.norm(d) for d in await a.adapter.read("todos", "all", {}, R)] == [
            {"id": "t1", "text": "a's", "userId": "u1"}
        ]
        await b.adapter.delete("users", "all", {})
        await b.adapter.delete("todos", "all", {})
        assert await a.adapter.read("users", "count", {}, R) == 1
        assert await a.adapter.read("todos", "count", {}, R) == 1
        assert await b.adapter.read("users", "count", {}, R) == 0


@pytest.mark.parametrize("name", SQL)
async def test_table_option_keeps_an_existing_unprefixed_table(name: str, tmp_path: Path) -> None:
    """Tables made before namespaces (or by another tool) stay usable by naming them with `table:`."""
    legacy, typed, ns = "legacy_" + uuid.uuid4().hex[:8], "typed_" + uuid.uuid4().hex[:8], _fresh()
    config = {"todos": {"table": legacy}, "Books": {"table": typed}, "notes": {"rules": {}}}
    async with open_backend(name, tmp_path, namespace=ns) as setup:
        d, driver = setup.adapter.d, setup.adapter.driver  # type: ignore[attr-defined]
        p = d.placeholder
        try:
            async with driver.transaction() as conn:  # as the server made them before namespaces: no prefix
                await conn.execute(d.create_schemaless(d.q(legacy)))
                await conn.execute(f"INSERT INTO {d.q(legacy)} VALUES ({p(1)}, {p(2)}, {p(3)})",  # noqa: S608
                                   ["old", '{"text": "from before"}', 1])
                await conn.execute(f"CREATE TABLE {d.q(typed)} (id VARCHAR(64) PRIMARY KEY, title VARCHAR(200))")
                await conn.execute(f"INSERT INTO {d.q(typed)} VALUES ({p(1)}, {p(2)})", ["1", "kept"])  # noqa: S608
            async with open_backend(name, tmp_path, namespace=ns, collections=config) as b:
                b.created.append("notes")
                assert await b.adapter.read("todos", "all", {}, R) == [{"id": "old", "text": "from before"}]
                await b.adapter.create("todos", [{"id": "new", "text": "after"}])
                assert await b.adapter.read("todos", "count", {}, R) == 2
                books = "books" if collection_key(b.adapter.kind, "Books") == "books" else "Books"
                assert await b.adapter.read(books, "all", {}, R) == [{"id": "1", "title": "kept"}]
                await b.adapter.create("notes", [{"id": "n"}])  # not configured with a table: in the namespace
                place = b.adapter.place("notes")  # type: ignore[attr-defined]
                assert (place.schema, place.table) != (None, "notes")
            async with open_backend(name, tmp_path, namespace=_fresh()) as other:  # without the option: unseen
                assert await other.adapter.read(legacy, "all", {}, R) == []
            async with driver.reader() as conn:  # the new row went to the legacy table itself
                rows = await conn.fetch(f"SELECT id FROM {d.q(legacy)} ORDER BY id")  # noqa: S608
            assert [r[0] for r in rows] == ["new", "old"]
        finally:
            async with driver.transaction() as conn:
                await conn.execute(f"DROP TABLE IF EXISTS {d.q(legacy)}")
                await conn.execute(f"DROP TABLE IF EXISTS {d.q(typed)}")
            await _drop_schemas(setup, [ns])


@pytest.mark.parametrize("name", ["mongo-fake", "mongo-nx"])
async def test_mongo_table_option_and_database_per_project(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    conn = f"mongomock://{uuid.uuid4().hex}" if name == "mongo-fake" else request.getfixturevalue("nx_mongo_url")
    legacy = "legacy_" + uuid.uuid4().hex[:8]
    async with open_backend(name, tmp_path, conn=conn, namespace="sc_test", database="sc_test") as old:
        old.created.append(legacy)
        await old.adapter.create(legacy, [{"_id": "old", "text": "from before"}])
        async with open_backend(name, tmp_path, conn=conn, namespace=_fresh(), database="sc_test",
                                collections={"todos": {"table": legacy}}) as b:
            assert b.adapter.collection_name("todos") == legacy  # type: ignore[attr-defined]
            assert b.adapter.collection_name("notes").endswith(".notes")  # type: ignore[attr-defined]
            assert await b.adapter.read("todos", "all", {}, R) == [{"_id": "old", "text": "from before"}]
    if name == "mongo-fake":  # no database named anywhere: each project gets its own
        ns = _fresh()
        async with open_backend(name, tmp_path, conn=conn, namespace=ns, database=None) as own:
            assert own.adapter.database == ns  # type: ignore[attr-defined]
            assert own.adapter.collection_name("users") == "users"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.postgres] if n.startswith("postgres") else
                 [pytest.mark.mysql] if n.startswith("mysql") else [])
    for n in ("sqlite-schemaless", "sqlite-typed", "postgres-schemaless", "postgres-typed",
              "mysql-schemaless", "mysql-typed")
])
async def test_reading_an_unknown_collection_creates_no_table(name: str, tmp_path: Path) -> None:
    ns = _fresh()
    async with open_backend(name, tmp_path, namespace=ns) as b:
        a: Any = b.adapter
        col = b.col()
        try:
            assert await a.read(col, "all", {"n": 1}, ReadOptions(sort={"n": 1}, limit=5)) == []
            assert await a.read(col, "count", {}, R) == 0
            assert await a.read(col, "distinct", {}, ReadOptions(distinct="n")) == []
            with pytest.raises(NotFound):
                await a.read(col, "one", {}, R)
            assert await a.aggregate(col, "all", [{"$group": {"_id": "$n", "c": {"$sum": 1}}}]) == []
            with pytest.raises(NotFound):
                await a.aggregate(col, "one", [{"$match": {"n": 1}}])
            assert await a.update(col, "all", {}, {"$set": {"n": 1}}) == []
            with pytest.raises(NotFound):
                await a.update(col, "one", {"n": 2}, {"$set": {"n": 1}})
            assert await a.delete(col, "all", {"n": 1}) == []
            with pytest.raises(InvalidQuery):  # still validated as if the table were there
                await a.read(col, "all", {"$where": "1"}, R)
            with pytest.raises(InvalidQuery):
                await a.aggregate(col, "all", [{"$project": {"n": 1}}, {"$match": {"n": 1}}])
            place = a.place(col)
            async with a.driver.reader() as conn:
                assert await a.driver.table_columns(conn, place.table, place.schema) == {}
                if a.kind == "postgres":  # nor the project's schema
                    rows = await conn.fetch("SELECT count(*) FROM pg_namespace WHERE nspname = $1", [place.schema])
                    assert rows[0][0] == 0
            await a.update(col, "upsert", {"id": "x"}, {"$set": {"n": 1}})  # a write makes it
            assert await a.read(col, "count", {}, R) == 1
        finally:
            await _drop_schemas(b, [ns])


def test_collection_key_is_the_name_as_each_database_compares_it() -> None:
    assert collection_key("sqlite", "RT_Todos") == "rt_todos"
    assert collection_key("mysql", "RT_Todos") == "rt_todos"
    assert collection_key("postgres", "RT_Todos") == "RT_Todos"
    assert collection_key("mongo", "RT_Todos") == "RT_Todos"


@pytest.mark.parametrize("ns", ["app", "App", "my-app", "x" * 128, "sqlite_x", "a" * 40, "0"])
@pytest.mark.parametrize("col", ["todos", "RT_TODOS", "c" * 63])
def test_prefixed_tables_fit_mysql_are_lower_case_and_never_collide(ns: str, col: str) -> None:
    table = prefixed_table(ns, col)
    assert len(table) <= 64 and table == table.lower() and not table.startswith("sqlite_")
    assert prefixed_table(ns, col.lower()) == table  # one collection, as the database compares names
    others = {prefixed_table(other, col) for other in ("app", "App", "my-app", "my_app", "x" * 127, "sqlite_x", "0")
              if other != ns}
    assert table not in others
    if table.count("$") == 1:
        assert table == f"{ns}${col.lower()}"


def test_reserved_or_long_names_are_hashed() -> None:
    assert pg_schema("shop") == "shop" and pg_schema("My-Shop") == "My-Shop"
    for reserved in ("public", "PUBLIC", "information_schema", "pg_catalog", "pg_x", "y" * 64):
        schema = pg_schema(reserved)
        assert "$" in schema and len(schema.encode()) <= 63 and not schema.lower().startswith("pg_")
    assert pg_schema("y" * 64) != pg_schema("y" * 65)
    assert mongo_database("shop") == "shop"
    for reserved in ("admin", "local", "Config", "z" * 64):
        assert "~" in mongo_database(reserved) and len(mongo_database(reserved)) <= 63
    assert mongo_prefix("shop") == "shop." and mongo_prefix("system") != "system."
