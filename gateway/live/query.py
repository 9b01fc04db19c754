"""One live query shared by every subscriber asking the same thing on this gateway.

The match (does the document satisfy `where`, did it before?) runs once per query, not once per
socket; per-document versions make duplicates and reordering harmless.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.query import matches

from ..peer import Peer

Kind = Literal["insert", "update", "delete"]
OTHERS_CAP = 10_000
"""How many versions of non-matching documents a query remembers (to drop stale events for them)."""


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
    others: collections.OrderedDict[str, int] = field(default_factory=collections.OrderedDict)
    subscribers: dict[tuple[str, str], Subscriber] = field(default_factory=dict)

    def last_version(self, doc_id: str) -> int | None:
        v = self.matched.get(doc_id)
        return v if v is not None else self.others.get(doc_id)

    def classify(self, doc_id: str, version: int, doc: dict[str, Any] | None, **more: Any
                 ) -> tuple[Event, Kind | None] | None:
        """Update the query's state with one change; None if the change is stale (already superseded).
        `more`: the rest of the `Event` (before, type, seq)."""
        last = self.last_version(doc_id)
        if last is not None and version <= last:
            return None
        was = doc_id in self.matched
        now = doc is not None and matches(self.where, doc)
        if now:
            self.matched[doc_id] = version
            self.others.pop(doc_id, None)
        else:
            self.matched.pop(doc_id, None)
            self.others[doc_id] = version
            self.others.move_to_end(doc_id)
            if len(self.others) > OTHERS_CAP:
                self.others.popitem(last=False)
        kind: Kind | None = ("update" if was else "insert") if now else ("delete" if was else None)
        return Event(doc_id, version, doc, now, **more), kind

    def seed(self, snapshot: dict[str, int]) -> None:
        """Merge the versions of a freshly read snapshot (events already seen win if newer)."""
        for doc_id, version in snapshot.items():
            last = self.last_version(doc_id)
            if last is None or version > last:
                self.others.pop(doc_id, None)
                self.matched[doc_id] = version


def coalesce(events: list[Event]) -> dict[str, Event]:
    """The newest event per document."""
    out: dict[str, Event] = {}
    for ev in events:
        cur = out.get(ev.id)
        if cur is None or ev.version > cur.version:
            out[ev.id] = ev
    return out
