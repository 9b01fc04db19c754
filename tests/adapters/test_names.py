"""Collection names are one collection exactly when `collection_key` says so, on every backend."""

from __future__ import annotations

from adapters.base import ReadOptions
from adapters.names import collection_key
from tests.adapters.conftest import Backend, nx_bug


@nx_bug("collection names compare ignoring case (SQLite tables underneath), so 'T_X' is 't_x'; not on MongoDB")
async def test_names_with_one_key_are_one_collection(backend: Backend) -> None:
    col = backend.col()
    shouting = col.upper()
    backend.created.append(shouting)
    a, kind = backend.adapter, backend.adapter.kind
    await a.create(shouting, [backend.doc({"id": "a", "n": 1})])
    same = collection_key(kind, shouting) == collection_key(kind, col)
    assert same is (kind in ("sqlite", "mysql"))
    assert await a.read(col, "count", {}, ReadOptions()) == (1 if same else 0)
    assert await a.read(shouting, "count", {}, ReadOptions()) == 1
    await a.create(col, [backend.doc({"id": "b", "n": 2})])
    assert await a.read(shouting, "count", {}, ReadOptions()) == (2 if same else 1)


async def test_sql_table_names_do_not_depend_on_the_servers_case_setting(backend: Backend) -> None:
    """On SQLite and MySQL the table is always lower-case, so `lower_case_table_names` changes nothing."""
    place = getattr(backend.adapter, "place", None)
    if place is None or backend.adapter.kind == "postgres":
        assert collection_key(backend.adapter.kind, "RT_TODOS") == "RT_TODOS"
        return
    assert place("RT_TODOS") == place("rt_todos")
    assert place("RT_TODOS").table == place("RT_TODOS").table.lower()
