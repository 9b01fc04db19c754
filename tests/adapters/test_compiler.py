"""The SQL a large `$in` becomes: one set test per type, whatever the number of values."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import ReadOptions
from adapters.query import validate_find
from adapters.sql.compiler import SET_MIN, Compiler, Params
from adapters.sql.dialect import DIALECTS
from adapters.sql.layout import Layout
from tests.adapters.conftest import Backend

VALUES: list[Any] = [*range(9_000), *(f"s{n}" for n in range(990)), True, False, None, 1.5]


def _compile(dialect: str, find: dict[str, Any], typed: bool = False) -> tuple[str, list[Any]]:
    d = DIALECTS[dialect]
    fields = {"id": "string", "n": "integer", "s": "string", "f": "float", "at": "datetime"}
    layout = Layout("c", d.q("c"), not typed, fields if typed else {})
    c = Compiler(d, lambda p: layout.resolve(d, p), Params(d))
    return c.where(validate_find(find)), c.p.values


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "mysql"])
@pytest.mark.parametrize("op", ["$in", "$nin"])
def test_ten_thousand_values_on_a_json_field_are_two_set_tests(dialect: str, op: str) -> None:
    sql, params = _compile(dialect, {"n": {op: VALUES}})
    assert sql.count("CASE WHEN") == 2, "one test for the numbers, one for the strings"
    assert sql.count(" OR ") <= 5  # numbers, strings, true, false, null
    if dialect == "mysql":  # parameters are interpolated into a constant IN list the server searches
        assert len(params) == len(VALUES) - 3
    else:
        assert len(params) == 2 and len(sql) < 2_000


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_typed_columns_get_one_array_or_json_parameter(dialect: str) -> None:
    find = {"n": {"$in": [*range(5_000), 2.5, "x"]}, "id": {"$in": [f"i{n}" for n in range(50)]},
            "at": {"$in": [f"2024-01-{d:02d}T00:00:00Z" for d in range(1, 29)]}}
    sql, params = _compile(dialect, find, typed=True)
    assert len(params) == 3
    if dialect == "postgres":
        assert '"n" = ANY($1::bigint[])' in sql and '"id" = ANY($2::text[])' in sql and "timestamptz[]" in sql
        assert params[0] == list(range(5_000))  # 2.5 cannot equal an integer column; "x" is another type


def test_few_values_stay_a_plain_in_list_so_indexes_apply() -> None:
    sql, params = _compile("postgres", {"id": {"$in": ["a", "b", "c"]}})
    assert '"id" IN ($1, $2, $3)' in sql and params == ["a", "b", "c"]
    sql, params = _compile("postgres", {"n": {"$in": list(range(SET_MIN - 1))}}, typed=True)
    assert "ANY" not in sql and len(params) == SET_MIN - 1


async def test_floats_and_repeated_values_match_as_in_memory(backend: Backend) -> None:
    col = await backend.seed([{"id": "a", "score": 0.1}, {"id": "b", "score": 2.5}, {"id": "c", "name": "x"}])
    for find in ({"score": 0.1}, {"score": {"$in": [0.1] * 40 + [7.5] * 40}}, {"score": {"$gte": 0.1, "$lte": 0.1}}):
        docs = await backend.adapter.read(col, "all", find, ReadOptions())
        assert [backend.norm(d)["id"] for d in docs] == ["a"], find
