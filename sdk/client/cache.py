"""The snapshot of one live query, kept correct on the client (Space Cloud §3.4, as the JS client does).

Rows are keyed by `docId` with the `time` of their last change. A change is applied only if it is
not older than the row (ties are applied, unless it is the very same document again, as a resume
replays); a delete leaves a tombstone so that an older change arriving late cannot bring the
document back. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conditions import Doc

FEED_TYPES = ("initial", "insert", "update", "delete")


@dataclass(frozen=True)
class Feed:
    """One `realtime-feed` (or one row of a subscribe ack): a change of one document."""

    query_id: str
    doc_id: str
    type: str
    payload: Doc | None
    time: float
    group: str = ""
    db_type: str = ""

    @classmethod
    def from_wire(cls, data: Any) -> Feed | None:
        """The feed in a frame's `data`; None for anything that is not a usable feed."""
        if not isinstance(data, dict) or data.get("type") not in FEED_TYPES:
            return None
        doc_id = data.get("docId")
        if isinstance(doc_id, bool) or not isinstance(doc_id, str | int | float):
            return None
        time = data.get("time")
        payload = data.get("payload")
        return cls(
            query_id=str(data.get("id") or ""),
            doc_id=str(int(doc_id)) if isinstance(doc_id, float) and doc_id.is_integer() else str(doc_id),
            type=data["type"],
            payload=payload if isinstance(payload, dict) else None,
            time=float(time) if isinstance(time, int | float) and not isinstance(time, bool) else 0.0,
            group=str(data.get("group") or ""),
            db_type=str(data.get("dbType") or ""),
        )


@dataclass
class Row:
    time: float
    payload: Doc | None
    deleted: bool


class Cache:
    """The documents of one live query, in the order they first appeared."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.max_time = 0.0
        """The largest time seen (feeds and acks): what a resume asks to continue from."""

    def clear(self) -> None:
        """Drop everything (a fresh snapshot replaces the cache)."""
        self.rows.clear()
        self.max_time = 0.0

    def seen(self, time: float) -> None:
        if time > self.max_time:
            self.max_time = time

    def apply(self, feed: Feed) -> bool:
        """Apply one feed; whether the visible documents changed."""
        self.seen(feed.time)
        row = self.rows.get(feed.doc_id)
        if row is not None and row.time > feed.time:
            return False
        if feed.type == "delete":
            self.rows[feed.doc_id] = Row(feed.time, row.payload if row else feed.payload, True)
            return row is not None and not row.deleted
        if row is not None and not row.deleted and row.time == feed.time and row.payload == feed.payload:
            return False  # the same change again (a resume replays a little before the last time seen)
        self.rows[feed.doc_id] = Row(feed.time, feed.payload, False)
        return True

    def get(self, doc_id: str) -> Doc | None:
        """The cached document (None if absent or deleted)."""
        row = self.rows.get(doc_id)
        return None if row is None or row.deleted else row.payload

    def docs(self) -> list[Doc]:
        """The documents that are not deleted."""
        return [row.payload for row in self.rows.values() if not row.deleted and row.payload is not None]

    def __len__(self) -> int:
        return sum(1 for row in self.rows.values() if not row.deleted)
