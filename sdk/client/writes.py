"""Write builders: `db.insert`, `db.update/update_one/upsert`, `db.delete/delete_one`, `db.begin_batch`.

Writes answer nothing (the server's `{}`); a failure raises. Every update operator the server
accepts has a method: `set inc mul max min push remove ($unset) rename current_date
current_timestamp ($currentDate)`.

    await db.update("todos").where(cond("id", "==", "1")).set({"done": True}).inc({"edits": 1})
    await db.begin_batch().add(db.insert("a").doc(x)).add(db.delete("b").where(c)).apply()
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from typing import Any, Self

from .conditions import Doc, Where, where_to_find
from .http import Http, segment


class Write:
    """What every write builder shares: its collection, its endpoint and its batch form."""

    kind = ""
    """The endpoint and batch `type`: create | update | delete."""

    def __init__(self, http: Http, alias: str, col: str, op: str) -> None:
        self._http = http
        self.alias = alias
        self.collection = col
        self._body: Doc = {"op": op}

    def body(self) -> Doc:
        """The request body as the server takes it."""
        return dict(self._body)

    async def apply(self) -> None:
        """Send the write."""
        path = f"/crud/{segment(self.alias)}/{segment(self.collection)}/{self.kind}"
        await self._http.request("POST", path, self.body())

    def __await__(self) -> Generator[Any, None, None]:
        return self.apply().__await__()


class Insert(Write):
    """`db.insert(col).doc({...})` or `.docs([...])`. A document without an id gets a generated one."""

    kind = "create"

    def __init__(self, http: Http, alias: str, col: str) -> None:
        super().__init__(http, alias, col, "one")

    def doc(self, doc: Mapping[str, Any]) -> Self:
        self._body = {"op": "one", "doc": dict(doc)}
        return self

    def docs(self, docs: Iterable[Mapping[str, Any]]) -> Self:
        self._body = {"op": "all", "doc": [dict(d) for d in docs]}
        return self

    async def one(self, doc: Mapping[str, Any]) -> None:
        """Insert one document now."""
        await self.doc(doc).apply()

    async def all(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Insert documents now (all or none)."""
        await self.docs(docs).apply()


class Update(Write):
    """`db.update(col)` (every match), `db.update_one(col)` (the first match), `db.upsert(col)`."""

    kind = "update"

    def __init__(self, http: Http, alias: str, col: str, op: str = "all") -> None:
        super().__init__(http, alias, col, op)
        self._body["find"] = {}
        self._body["update"] = {}

    def where(self, *conditions: Where) -> Self:
        self._body["find"] = where_to_find(conditions)
        return self

    def _op(self, operator: str, fields: Mapping[str, Any]) -> Self:
        update: Doc = self._body["update"]
        update[operator] = {**update.get(operator, {}), **fields}
        return self

    def set(self, fields: Mapping[str, Any]) -> Self:
        """`$set`: `{field: value}` (dotted paths set nested fields)."""
        return self._op("$set", fields)

    def inc(self, fields: Mapping[str, int | float]) -> Self:
        """`$inc`: add the numbers (a missing field starts from 0)."""
        return self._op("$inc", fields)

    def mul(self, fields: Mapping[str, int | float]) -> Self:
        """`$mul`: multiply by the numbers (a missing field becomes 0)."""
        return self._op("$mul", fields)

    def max(self, fields: Mapping[str, Any]) -> Self:
        """`$max`: set where the value is greater than the field's (or the field is missing)."""
        return self._op("$max", fields)

    def min(self, fields: Mapping[str, Any]) -> Self:
        """`$min`: set where the value is smaller than the field's (or the field is missing)."""
        return self._op("$min", fields)

    def push(self, fields: Mapping[str, Any]) -> Self:
        """`$push`: append to arrays; `{"tags": {"$each": ["a", "b"]}}` appends several."""
        return self._op("$push", fields)

    def remove(self, *fields: str) -> Self:
        """`$unset` the fields."""
        return self._op("$unset", dict.fromkeys(fields, ""))

    def rename(self, fields: Mapping[str, str]) -> Self:
        """`$rename`: `{"old": "new"}`."""
        return self._op("$rename", fields)

    def current_date(self, *fields: str) -> Self:
        """`$currentDate` as a date (the server's clock, an ISO-8601 string)."""
        return self._op("$currentDate", {f: {"$type": "date"} for f in fields})

    def current_timestamp(self, *fields: str) -> Self:
        """`$currentDate` as a timestamp (Unix milliseconds)."""
        return self._op("$currentDate", {f: {"$type": "timestamp"} for f in fields})

    def body(self) -> Doc:
        return {**self._body, "update": {k: dict(v) for k, v in self._body["update"].items()}}


class Delete(Write):
    """`db.delete(col)` (every match) or `db.delete_one(col)` (the first match, `NotFound` if none)."""

    kind = "delete"

    def __init__(self, http: Http, alias: str, col: str, op: str = "all") -> None:
        super().__init__(http, alias, col, op)
        self._body["find"] = {}

    def where(self, *conditions: Where) -> Self:
        self._body["find"] = where_to_find(conditions)
        return self


class Batch:
    """`db.begin_batch()`: inserts, updates and deletes of one database in one transaction."""

    def __init__(self, http: Http, alias: str) -> None:
        self._http = http
        self.alias = alias
        self._reqs: list[Doc] = []

    def add(self, request: Insert | Update | Delete) -> Self:
        if not isinstance(request, Insert | Update | Delete):
            raise TypeError("a batch takes insert, update and delete builders")
        if request.alias != self.alias:
            raise ValueError(f"a batch runs on one database: {request.alias!r} is not {self.alias!r}")
        self._reqs.append({"type": request.kind, "col": request.collection, **request.body()})
        return self

    def body(self) -> Doc:
        return {"reqs": list(self._reqs)}

    async def apply(self) -> None:
        """Run every request, all or nothing."""
        await self._http.request("POST", f"/crud/{segment(self.alias)}/batch", self.body())

    def __await__(self) -> Generator[Any, None, None]:
        return self.apply().__await__()
