"""What a resuming subscriber is told about the changes it missed, under its read rule.

Changes are taken a page at a time from the log and folded per document: the state before the
first change of the page (where the database could tell it) and the state after the last. A
document that matches the query and may be read now is sent as an `update` (upsert); one that did
match and could be read before, and no longer does, as a `delete`. Nothing is said about a document
the subscriber could read neither before nor after: another user's document changing, or being
deleted, sends nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from adapters.query import matches

from .frames import doc_id
from .query import Event

Allowed = Callable[[dict[str, Any]], Awaitable[bool]]
Told = tuple[Literal["update", "delete"], Event]


@dataclass(slots=True)
class _Window:
    first: Event
    last: Event


def fold(events: Iterable[Event]) -> list[_Window]:
    """Per document, its first and last change (in the order of the last)."""
    out: dict[str, _Window] = {}
    for ev in events:
        w = out.get(ev.id)
        if w is None:
            out[ev.id] = _Window(ev, ev)
        elif ev.version > w.last.version:
            w.last = ev
        elif ev.version < w.first.version:
            w.first = ev
    return sorted(out.values(), key=lambda w: (w.last.seq, w.last.version))


async def tell(events: Iterable[Event], where: dict[str, Any], allowed: Allowed) -> list[Told]:
    """What to send one subscriber about these changes (oldest first)."""
    out: list[Told] = []
    for w in fold(events):
        last, first = w.last, w.first
        if last.doc is not None and matches(where, last.doc) and await allowed(last.doc):
            out.append(("update", last))
            continue
        if first.type == "insert":
            continue  # it did not exist before these changes
        if first.before is not None:
            if matches(where, first.before) and await allowed(first.before):
                out.append(("delete", last))
            continue
        # The database could not tell what it was before: only someone who may read what is known of it
        # hears that it is gone.
        known = last.doc or first.doc
        if known is not None and await allowed(known):
            out.append(("delete", last))
    return out


def event(seq: int, change: Any) -> Event | None:
    """A logged `ChangeEvent` as an `Event` (its verdict, `now`, is left to the caller)."""
    did = doc_id(change.id)
    if did is None:
        return None
    return Event(did, change.version, change.doc, False, before=change.before, type=change.type, seq=seq)
