"""The in-memory matcher, validation errors and the factory (no database needed)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.query import matches, validate_find, validate_pipeline, validate_update
from adapters.registry import create_adapter, sqlite_path
from adapters.updates import apply_update
from common.errors import InvalidQuery, ServiceUnavailable

DOC = {"id": "1", "n": 1, "f": 1.5, "s": "1", "b": True, "z": None, "o": {"p": {"q": 2}}, "l": [1, 2]}


@pytest.mark.parametrize(("find", "expected"), [
    ({"n": 1}, True), ({"n": 1.0}, True), ({"n": "1"}, False), ({"n": True}, False), ({"b": 1}, False),
    ({"b": True}, True), ({"s": 1}, False), ({"s": "1"}, True), ({"z": None}, True), ({"missing": None}, True),
    ({"missing": {"$ne": 1}}, True), ({"missing": {"$gt": 0}}, False), ({"o.p.q": 2}, True),
    ({"o.p.q": {"$gte": 2, "$lt": 3}}, True), ({"o.p": None}, False), ({"n.x": None}, True),
    ({"s": {"$gt": "0"}}, True), ({"s": {"$gt": 0}}, False), ({"n": {"$in": ["1", 1.0]}}, True),
    ({"n": {"$nin": [1]}}, False), ({"n": {"$neq": 2}}, True),
    ({"$or": [{"n": 2}, {"s": "1"}]}, True), ({"$and": [{"n": 1}, {"s": "2"}]}, False),
])
def test_matches(find: dict[str, Any], expected: bool) -> None:
    assert matches(find, DOC) is expected


@pytest.mark.parametrize("find", [
    {"$where": "1"}, {"a": {"$regex": "x"}}, {"a; DROP": 1}, {"a": {"$expr": 1}}, {"a": [1]}, {"a": {"b": 1}},
    {"a": {"$gt": None}}, {"a": {"$in": [[1]]}}, "x", {"$or": [{}, "x"]},
])
def test_invalid_finds_name_the_problem(find: Any) -> None:
    with pytest.raises(InvalidQuery) as info:
        validate_find(find)
    assert info.value.status == 400 and info.value.message


def test_error_messages_name_the_operator() -> None:
    with pytest.raises(InvalidQuery, match=r"\$where is not allowed"):
        validate_find({"$where": "1"})
    with pytest.raises(InvalidQuery, match=r"unknown operator \$regex"):
        validate_find({"a": {"$regex": "x"}})
    with pytest.raises(InvalidQuery, match=r"unknown operator \$lookup in pipeline"):
        validate_pipeline([{"$lookup": {}}])
    with pytest.raises(InvalidQuery, match=r"\$function is not allowed"):
        validate_pipeline([{"$group": {"_id": None, "x": {"$function": {}}}}])
    with pytest.raises(InvalidQuery, match=r"unknown operator \$pull in update"):
        validate_update({"$pull": {"a": 1}})
    with pytest.raises(InvalidQuery, match="invalid field name 'a; DROP TABLE x'"):
        validate_find({"a; DROP TABLE x": 1})


def test_normalisation() -> None:
    assert validate_find({"a": 1, "b": {"$neq": 2}}) == {"a": {"$eq": 1}, "b": {"$ne": 2}}
    assert validate_pipeline([{"$group": {"_id": None, "n": {"$count": {}}}}]) == [
        {"$group": {"_id": None, "n": {"$sum": 1}}}
    ]


def test_apply_update_does_not_touch_input() -> None:
    before = {"a": {"b": 1}, "l": [1]}
    after = apply_update(before, {"$inc": {"a.b": 1}, "$push": {"l": 2}})
    assert before == {"a": {"b": 1}, "l": [1]} and after == {"a": {"b": 2}, "l": [1, 2]}
    with pytest.raises(InvalidQuery):
        apply_update({"a": 1}, validate_update({"$set": {"a.b": 1}}))


def test_registry() -> None:
    assert sqlite_path("sqlite:///tmp/x.db") == "/tmp/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("data/x.db") == "data/x.db"
    assert create_adapter("mongo", "mongomock://x", namespace="p", database="d").id_field == "_id"
    assert create_adapter("sqlite", ":memory:", namespace="p").id_field == "id"
    with pytest.raises(InvalidQuery):
        create_adapter("oracle", "x", namespace="p")
    assert create_adapter("mongo", "mongodb://127.0.0.1:1", namespace="p").database == "p"  # type: ignore[attr-defined]
    for bad in ("", "a.b", "a$b", "x" * 129, "é"):
        with pytest.raises(InvalidQuery):
            create_adapter("sqlite", ":memory:", namespace=bad)


@pytest.mark.parametrize(("kind", "conn"), [
    ("postgres", "postgresql://postgres@127.0.0.1:1/test"),
    ("mysql", "mysql://root@127.0.0.1:1/test"),
    ("mongo", "mongodb://127.0.0.1:1/test?serverSelectionTimeoutMS=200"),
    ("sqlite", "/nonexistent-dir/x/y.db"),
])
async def test_unreachable_database_is_unavailable(kind: str, conn: str) -> None:
    adapter = create_adapter(kind, conn, namespace="p")
    with pytest.raises(ServiceUnavailable) as info:
        await adapter.connect()
    assert info.value.status == 503
    await adapter.close()
