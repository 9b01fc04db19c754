"""What a resuming subscriber is told about the changes it missed, under its read rule.

Changes are taken a page at a time from the log and folded per document: the state before the
first change of the page (where the database could tell it), the states after each change, and the
last. A document that matches the query and may be read now is sent as an `update` (upsert); one
that no longer does, as a `delete` if the subscriber may hold it: it matched and could be read
before the page or after one of its changes (the snapshot a cursor came with can be newer than the
cursor). Nothing is said about a document the subscriber could never read: another user's document
changing, or being deleted, sends nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
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
    between: list[Event] = field(default_factory=list)
    """The document's other changes in the window (their states after the change may have been held)."""


def fold(events: Iterable[Event]) -> list[_Window]:
    """Per document, its first and last change by version (in the order of the last), and those between."""
    per: dict[str, list[Event]] = {}
    for ev in events:
        per.setdefault(ev.id, []).append(ev)
    out = []
    for changes in per.values():
        changes.sort(key=lambda ev: ev.version)
        out.append(_Window(changes[0], changes[-1], changes[1:-1]))
    return sorted(out, key=lambda w: (w.last.seq, w.last.version))


async def tell(events: Iterable[Event], where: dict[str, Any], allowed: Allowed) -> list[Told]:
    """What to send one subscriber about these changes (oldest first)."""
    out: list[Told] = []
    for w in fold(events):
        last, first = w.last, w.first
        if last.doc is not None and matches(where, last.doc) and await allowed(last.doc):
            out.append(("update", last))
            continue
        # No longer in its result: a delete if the subscriber may hold it, that is if it matched and could
        # be read before these changes, or after any of them but the last (a snapshot or feed taken at a
        # position inside the window holds that state).
        held = [ev.doc for ev in (first, *w.between) if ev is not last]
        if first.before is not None:
            held.insert(0, first.before)
        elif first.type != "insert":
            # The database could not tell what it was before: only someone who may read what is known of
            # it hears that it is gone.
            known = last.doc or first.doc
            if known is not None and await allowed(known):
                out.append(("delete", last))
                continue
        for doc in held:
            if doc is not None and matches(where, doc) and await allowed(doc):
                out.append(("delete", last))
                break
    return out


def event(seq: int, change: Any) -> Event | None:
    """A logged `ChangeEvent` as an `Event` (its verdict, `now`, is left to the caller)."""
    did = doc_id(change.id)
    if did is None:
        return None
    return Event(did, change.version, change.doc, False, before=change.before, type=change.type, seq=seq)
