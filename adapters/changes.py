"""What change capture hands the worker's relay, whatever the database (`adapters.sql.changelog` on SQL,
`adapters.mongo_changes` on Mongo): captured changes in order, under a lease, trimmed once stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from adapters.base import Doc

ChangeType = Literal["insert", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Captured:
    """One change of one document, as the database recorded it."""

    seq: int
    """Its position in the capture (the outbox row; a running count on Mongo)."""
    col: str
    type: ChangeType
    id: str | int
    doc: Doc | None
    """The document after the change (None for a delete)."""
    before: Doc | None
    """The document before it, where the database could tell (None for an insert)."""
    version: int
    time: int
    """When it was captured (ms, the database's clock)."""
    token: Any = None
    """Where to go on from once it is stored (Mongo: the collection and the stream's resume token)."""


class ChangeSource(Protocol):
    keeps_lease: bool
    """Whether the relay keeps the lease between rounds (watching holds state), or gives it up when idle."""

    def covers(self, col: str) -> bool:
        """Whether the worker's own writes to `col` are captured (else it publishes them itself)."""

    async def any_pending(self) -> bool:
        """Whether there may be changes to read (cheap; takes no lease)."""

    async def claim(self, owner: str, *, ttl_ms: int, limit: int) -> list[Captured] | None:
        """Take (or renew) the lease for `ttl_ms` and read up to `limit` changes, oldest first; None while
        another relay holds the lease."""

    async def trim(self, owner: str, done: list[Captured], *, release: bool) -> None:
        """Forget changes now stored in the log; `release` gives the lease up."""
