"""An in-process Mongo for tests: mongomock behind the async subset of pymongo that
`adapters.mongo` uses, so the same adapter code runs against it and a real server.

`mongomock://<name>` URIs with the same name share one in-memory server. Errors are
re-raised as pymongo's exception types. There are no transactions (like a standalone
server), so batches exercise the adapter's compensation path.

mongomock compares with Python's `==` (so `True == 1`); filters are therefore
evaluated with `adapters.query.matches` (real Mongo's semantics for the supported
subset) and handed to mongomock as an `_id` list. In pipelines only the `$match`
stages before the first `$group` get this treatment. mongomock lacks some update
operators ($mul), so `find_one_and_update` applies `adapters.updates.apply_update`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import mongomock
from pymongo import errors as pe

from adapters.query import matches
from adapters.updates import apply_update, upsert_doc
from adapters.values import MISSING

_SERVERS: dict[str, Any] = {}


@contextmanager
def _as_pymongo() -> Iterator[None]:
    try:
        yield
    except mongomock.DuplicateKeyError as exc:
        raise pe.DuplicateKeyError(str(exc), 11000, getattr(exc, "details", None)) from exc
    except mongomock.OperationFailure as exc:
        raise pe.OperationFailure(str(exc), getattr(exc, "code", None) or 2) from exc


class FakeCursor:
    def __init__(self, produce: Callable[[], Any]) -> None:
        self._produce = produce

    async def to_list(self, length: int | None = None) -> list[Any]:
        with _as_pymongo():
            items = list(self._produce())
        return items if length is None else items[:length]


class FakeCollection:
    """The async collection methods `MongoAdapter` calls; `session` is accepted and ignored."""

    def __init__(self, col: Any) -> None:
        self._col = col

    def _f(self, filter: Any) -> Any:
        """The filter as an `_id` list, evaluated with our matcher (see the module docstring)."""
        if not filter:
            return filter
        rest = dict(filter)
        version = rest.pop("_v", MISSING)
        ids = [
            d["_id"] for d in self._col.find({})
            if (version is MISSING or d.get("_v") == version) and matches(rest, d)
        ]
        return {"_id": {"$in": ids}}

    def find(self, filter: Any = None, projection: Any = None, *, sort: Any = None, skip: int = 0,
             limit: int = 0, session: Any = None) -> FakeCursor:
        return FakeCursor(lambda: self._col.find(self._f(filter), projection, sort=sort, skip=skip, limit=limit))

    async def insert_many(self, docs: list[Any], *, session: Any = None) -> None:
        with _as_pymongo():
            self._col.insert_many(docs)

    async def count_documents(self, filter: Any, *, session: Any = None) -> int:
        with _as_pymongo():
            return int(self._col.count_documents(self._f(filter) or {}))

    async def distinct(self, key: str, filter: Any = None, *, session: Any = None) -> list[Any]:
        with _as_pymongo():
            return list(self._col.distinct(key, self._f(filter)))

    async def find_one_and_update(self, filter: Any, update: Any, *, upsert: bool = False,
                                  return_document: Any = None, session: Any = None) -> Any:
        with _as_pymongo():
            ids = self._f(filter)
            found = list(self._col.find(ids, limit=1))
            rest = {op: v for op, v in update.items() if op != "$setOnInsert"}
            if found:
                after = apply_update(found[0], rest)
                self._col.replace_one({"_id": after["_id"]}, after)
                return after
            if not upsert:
                return None
            doc = apply_update({**upsert_doc(filter), **update.get("$setOnInsert", {})}, rest)
            self._col.insert_one(doc)
            return doc

    async def delete_many(self, filter: Any, *, session: Any = None) -> None:
        with _as_pymongo():
            self._col.delete_many(self._f(filter))

    async def replace_one(self, filter: Any, doc: Any, *, upsert: bool = False, session: Any = None) -> None:
        with _as_pymongo():
            self._col.replace_one(filter, doc, upsert=upsert)

    async def aggregate(self, pipeline: list[Any], *, session: Any = None) -> FakeCursor:
        stages = list(pipeline)
        for n, stage in enumerate(stages):
            if "$group" in stage:
                break
            if "$match" in stage:
                stages[n] = {"$match": self._f(stage["$match"]) or {}}
        return FakeCursor(lambda: self._aggregate(stages))

    def _aggregate(self, stages: list[Any]) -> list[Any]:
        for n, stage in enumerate(stages):  # mongomock groups an empty input into one row
            if "$group" in stage and not list(self._col.aggregate(stages[:n])):
                return []
        return list(self._col.aggregate(stages))

    async def drop(self) -> None:
        self._col.drop()

    async def create_index(self, keys: list[tuple[str, int]], *, name: str | None = None, **kw: Any) -> str:
        with _as_pymongo():
            return str(self._col.create_index(keys, name=name, **kw))

    async def index_information(self) -> dict[str, Any]:
        return dict(self._col.index_information())


class FakeDatabase:
    def __init__(self, db: Any) -> None:
        self._db = db

    def __getitem__(self, name: str) -> FakeCollection:
        return FakeCollection(self._db[name])

    async def command(self, name: str) -> dict[str, Any]:
        return {"ok": 1.0}


class FakeClient:
    """Stands in for `pymongo.AsyncMongoClient` (no transactions, like a standalone server)."""

    def __init__(self, uri: str) -> None:
        key = uri.split("://", 1)[-1].split("/", 1)[0]
        self._client = _SERVERS.setdefault(key, mongomock.MongoClient())
        self.closed = False

    def __getitem__(self, name: str) -> FakeDatabase:
        if self.closed:
            raise pe.InvalidOperation("Cannot use MongoClient after close")
        return FakeDatabase(self._client[name])

    @property
    def admin(self) -> FakeDatabase:
        return self["admin"]

    async def close(self) -> None:
        self.closed = True
