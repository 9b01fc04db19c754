"""Read builders: `db.get/get_one/count/distinct(col)` and `db.aggr/aggr_one(col)`.

A builder is configured by chaining and sent by `await builder` (or `await builder.apply()`);
it answers the request's `result`:

    todos = await db.get("todos").where(cond("userId", "==", me)).sort("-createdAt").limit(10)
    n = await db.count("todos").where(cond("done", "==", False))
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Generic, Self, TypeVar, cast

from .conditions import Doc, Where, where_to_find
from .http import Http, segment

T = TypeVar("T")

DEFAULT_LIMIT_WITH_SKIP = 20
"""A `skip` without a `limit` sends this limit, as space-api does."""


class Get(Generic[T]):
    """A read of a collection: op `all` (list of docs), `one` (a doc), `count` (int) or `distinct`."""

    def __init__(self, http: Http, alias: str, col: str, op: str) -> None:
        self._http = http
        self.alias = alias
        self.collection = col
        self._op = op
        self._find: Doc = {}
        self._options: Doc = {}

    def where(self, *conditions: Where) -> Self:
        """Which documents: conditions (and-ed) or a find mapping; `where()` = every document."""
        self._find = where_to_find(conditions)
        return self

    def select(self, fields: Mapping[str, int]) -> Self:
        """Projection, e.g. `{"text": 1}` (only text and the id) or `{"secret": 0}`."""
        self._options["select"] = dict(fields)
        return self

    def sort(self, *fields: str) -> Self:
        """`sort("a", "-b")`: by a ascending, then b descending."""
        self._options["sort"] = {f[1:] if f.startswith("-") else f: -1 if f.startswith("-") else 1 for f in fields}
        return self

    def skip(self, n: int) -> Self:
        self._options["skip"] = n
        return self

    def limit(self, n: int) -> Self:
        self._options["limit"] = n
        return self

    def body(self) -> Doc:
        """The request body as the server takes it."""
        options = dict(self._options)
        if "skip" in options and "limit" not in options:
            options["limit"] = DEFAULT_LIMIT_WITH_SKIP
        return {"op": self._op, "find": self._find, "options": options}

    async def apply(self) -> T:
        """Send the read; its `result`."""
        path = f"/crud/{segment(self.alias)}/{segment(self.collection)}/read"
        answer = await self._http.request("POST", path, self.body())
        return cast(T, answer.get("result") if isinstance(answer, dict) else None)

    def __await__(self) -> Generator[Any, None, T]:
        return self.apply().__await__()

    async def one(self) -> Doc:
        """The one matching document (`NotFound` if none)."""
        self._op = "one"
        return cast(Doc, await self.apply())

    async def all(self) -> list[Doc]:
        """Every matching document."""
        self._op = "all"
        return cast(list[Doc], await self.apply())

    async def count(self) -> int:
        """How many documents match."""
        self._op = "count"
        return cast(int, await self.apply())

    async def distinct(self, key: str) -> list[Any]:
        """The distinct values of `key` among the matching documents."""
        self._op = "distinct"
        self._options["distinct"] = key
        return cast(list[Any], await self.apply())


class Aggregate(Generic[T]):
    """A pipeline over a collection: op `all` (list) or `one` (the first result, `NotFound` if none).

    Mongo pipelines on Mongo; on SQL databases `$match $group ($sum $avg $min $max $count) $sort
    $skip $limit $project`.
    """

    def __init__(self, http: Http, alias: str, col: str, op: str) -> None:
        self._http = http
        self.alias = alias
        self.collection = col
        self._op = op
        self._pipe: list[Doc] = []

    def pipe(self, stages: list[Doc]) -> Self:
        """The pipeline stages, e.g. `[{"$match": {...}}, {"$group": {"_id": "$k", "n": {"$sum": 1}}}]`."""
        self._pipe = list(stages)
        return self

    def body(self) -> Doc:
        return {"op": self._op, "pipe": self._pipe}

    async def apply(self) -> T:
        path = f"/crud/{segment(self.alias)}/{segment(self.collection)}/aggr"
        answer = await self._http.request("POST", path, self.body())
        return cast(T, answer.get("result") if isinstance(answer, dict) else None)

    def __await__(self) -> Generator[Any, None, T]:
        return self.apply().__await__()
