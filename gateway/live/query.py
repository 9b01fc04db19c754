"""One live query shared by every subscriber asking the same thing on this gateway.

The match (does the document satisfy `where`, did it before?) runs once per query, not once per
socket, and only for the changes the collection's `QueryIndex` says can concern it; per-document
versions make duplicates and reordering harmless. A query remembers only the documents its result
holds: "this document left the query" comes from that, or from the document before the write the
change carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.query import matcher

from ..peer import Peer

Kind = Literal["insert", "update", "delete"]


@dataclass(slots=True)
class Event:
    """A change event as it arrives from the log, with the query's verdict on it."""

    id: str
    version: int
    doc: dict[str, Any] | None
    now: bool = False
    """Whether the document matches the query after this change."""
    before: dict[str, Any] | None = None
    """The document before the change, where the database could tell."""
    type: str = "update"
    """insert | update | delete, as the database saw it."""
    seq: int = 0
    """Its position in the change log (0: unknown)."""


@dataclass(eq=False)
class Subscriber:
    client: Peer
    qid: str
    claims: dict[str, Any] | None
    token: str | None
    changes_only: bool = False
    syncing: list[Event] | None = None
    """Events buffered while the initial snapshot (or a resume) is being read."""
    expires: float | None = None
    """When the subscriber's token expires (epoch seconds): the live query ends then."""
    floor: dict[str, int] | None = None
    """Versions its snapshot already holds, where the shared query has not caught up with them yet."""


@dataclass(eq=False)
class SharedQuery:
    key: tuple[str, str, str, str]
    """(project, alias, col, canonical where)"""
    where: dict[str, Any]
    id_field: str
    matched: dict[str, int] = field(default_factory=dict)
    """Versions of the documents its result holds (what its clients hold)."""
    subscribers: dict[tuple[str, str], Subscriber] = field(default_factory=dict)
    holders: Holders | None = field(default=None, repr=False)
    """The collection's document -> queries map (`gateway.live.index`), kept in step with `matched`."""
    _match: Callable[[dict[str, Any]], bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._match = matcher(self.where)

    def matches(self, doc: dict[str, Any]) -> bool:
        """Whether `doc` satisfies `where` (validated once, when the query was made)."""
        return self._match(doc)

    def last_version(self, doc_id: str) -> int | None:
        return self.matched.get(doc_id)

    def _hold(self, doc_id: str, version: int) -> None:
        self.matched[doc_id] = version
        if self.holders is not None:
            self.holders.hold(doc_id, self)

    def _release(self, doc_id: str) -> None:
        if self.matched.pop(doc_id, None) is not None and self.holders is not None:
            self.holders.release(doc_id, self)

    def forget(self) -> None:
        """Hold nothing any more."""
        if self.holders is not None:
            for doc_id in self.matched:
                self.holders.release(doc_id, self)
        self.matched.clear()

    def classify(self, doc_id: str, version: int, doc: dict[str, Any] | None, **more: Any
                 ) -> tuple[Event, Kind | None] | None:
        """Update the query's state with one change; None if the change is stale (already superseded).
        `more`: the rest of the `Event` (before, type, seq). The document was in the result if the query
        holds it, or if the document before the write (where the change carries it) matched."""
        last = self.matched.get(doc_id)
        if last is not None and version <= last:
            return None
        before = more.get("before")
        was = last is not None or (before is not None and self._match(before))
        now = doc is not None and self._match(doc)
        if now:
            self._hold(doc_id, version)
        else:
            self._release(doc_id)
        kind: Kind | None = ("update" if was else "insert") if now else ("delete" if was else None)
        return Event(doc_id, version, doc, now, **more), kind

    def seed(self, snapshot: dict[str, int]) -> None:
        """Merge the versions of a freshly read snapshot (events already seen win if newer)."""
        for doc_id, version in snapshot.items():
            last = self.last_version(doc_id)
            if last is None or version > last:
                self._hold(doc_id, version)


class Holders:
    """Document id -> the queries whose result holds it (what their clients hold)."""

    __slots__ = ("_by_doc",)

    def __init__(self) -> None:
        self._by_doc: dict[str, SharedQuery | set[SharedQuery]] = {}

    def hold(self, doc_id: str, query: SharedQuery) -> None:
        cur = self._by_doc.get(doc_id)
        if cur is None:
            self._by_doc[doc_id] = query
        elif isinstance(cur, set):
            cur.add(query)
        elif cur is not query:
            self._by_doc[doc_id] = {cur, query}

    def release(self, doc_id: str, query: SharedQuery) -> None:
        cur = self._by_doc.get(doc_id)
        if cur is query:
            del self._by_doc[doc_id]
        elif isinstance(cur, set):
            cur.discard(query)
            if len(cur) == 1:
                self._by_doc[doc_id] = next(iter(cur))

    def of(self, doc_id: str) -> tuple[SharedQuery, ...] | set[SharedQuery]:
        cur = self._by_doc.get(doc_id)
        if cur is None:
            return ()
        return cur if isinstance(cur, set) else (cur,)

    def __len__(self) -> int:
        return len(self._by_doc)


def coalesce(events: list[Event]) -> dict[str, Event]:
    """The newest event per document."""
    out: dict[str, Event] = {}
    for ev in events:
        cur = out.get(ev.id)
        if cur is None or ev.version > cur.version:
            out[ev.id] = ev
    return out
