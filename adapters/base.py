"""The one seam between the db worker and a database.

Every adapter (Mongo, PostgreSQL, MySQL/MariaDB, SQLite) implements `Adapter`.
Documents cross this seam as plain JSON-compatible dicts (str, int, float, bool,
None, list, dict); dates are ISO-8601 strings. The primary-key field is `_id` on
Mongo and `id` on SQL (as in Space Cloud); `Adapter.id_field` names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Doc = dict[str, Any]
ChangeType = Literal["insert", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Change:
    """One document changed by a successful write.

    `doc` is the full document after the write (None for deletes); `version`
    grows for every write to the same document id, also across delete and re-insert.
    """

    type: ChangeType
    id: str | int
    doc: Doc | None
    version: int
    col: str = ""
    """The collection; set by `batch` (single-collection writes may leave it empty)."""
    before: Doc | None = None
    """The document before the write (updates and deletes), for the change log."""


@dataclass(slots=True)
class ReadOptions:
    select: dict[str, int] | None = None
    sort: dict[str, int] | None = None
    skip: int | None = None
    limit: int | None = None
    distinct: str | None = None
    versions: bool = False
    """Internal (live queries): include each document's version as `_v`."""


@dataclass(slots=True)
class WriteRequest:
    """One sub-request of a batch (also the shape the worker uses for single writes)."""

    type: Literal["create", "update", "delete"]
    col: str
    op: str
    doc: Doc | list[Doc] | None = None
    find: Doc = field(default_factory=dict)
    update: Doc | None = None


class Adapter(Protocol):
    kind: str
    """'mongo' | 'postgres' | 'mysql' | 'sqlite'"""
    id_field: str
    """'_id' on Mongo, 'id' on SQL."""

    async def connect(self) -> None:
        """Open the pool. Raises `ServiceUnavailable` if the database cannot be reached."""

    async def close(self) -> None: ...

    async def create(self, col: str, docs: list[Doc]) -> list[Change]:
        """Insert documents (an id is generated where missing). All or nothing."""

    async def read(self, col: str, op: str, find: Doc, options: ReadOptions) -> Any:
        """op: one (a doc; NotFound if none) | all (list) | count (int) | distinct (list of values)."""

    async def update(self, col: str, op: str, find: Doc, update: Doc) -> list[Change]:
        """op: one | all | upsert. Returns a Change per affected document."""

    async def delete(self, col: str, op: str, find: Doc) -> list[Change]:
        """op: one | all. Returns a Change per deleted document."""

    async def aggregate(self, col: str, op: str, pipeline: list[Doc]) -> Any:
        """op: one (first result or NotFound) | all (list)."""

    async def batch(self, reqs: list[WriteRequest]) -> list[Change]:
        """Run every request in one transaction; all or nothing."""


class WritesAsBatch:
    """create/update/delete as a one-request `batch`: adapters that write everything one way."""

    async def batch(self, reqs: list[WriteRequest]) -> list[Change]:
        raise NotImplementedError

    async def create(self, col: str, docs: list[Doc]) -> list[Change]:
        return await self.batch([WriteRequest("create", col, "all", docs)])

    async def update(self, col: str, op: str, find: Doc, update: Doc) -> list[Change]:
        return await self.batch([WriteRequest("update", col, op, find=find, update=update)])

    async def delete(self, col: str, op: str, find: Doc) -> list[Change]:
        return await self.batch([WriteRequest("delete", col, op, find=find)])
