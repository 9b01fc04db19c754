"""What a resuming subscriber is told about a window of changes (`gateway.live.resume.tell`): a delete for
every document it may have held (it matched and could be read before the window, or after any change in
it) and no longer does, and nothing about documents it never could read."""

from __future__ import annotations

from typing import Any

from gateway.live.query import Event
from gateway.live.resume import tell

WHERE = {"userId": "alice"}


async def alice_reads(doc: dict[str, Any]) -> bool:
    return doc.get("userId") == "alice"


def ev(did: str, version: int, doc: dict[str, Any] | None, type_: str,
       before: dict[str, Any] | None = None) -> Event:
    return Event(did, version, doc, before=before, type=type_, seq=version)


async def test_created_then_deleted_in_the_window_is_a_delete() -> None:
    """The snapshot a cursor came with may already hold a document the window creates: its delete is told."""
    a1 = {"id": "a1", "userId": "alice"}
    told = await tell([ev("a1", 1, a1, "insert"), ev("a1", 2, None, "delete", before=a1)], WHERE, alice_reads)
    assert [(k, e.id) for k, e in told] == [("delete", "a1")]


async def test_moved_in_and_out_within_the_window_is_a_delete() -> None:
    b = {"id": "d", "userId": "bob"}
    a = {"id": "d", "userId": "alice"}
    told = await tell([ev("d", 1, a, "update", before=b), ev("d", 2, b, "update", before=a)], WHERE, alice_reads)
    assert [(k, e.id) for k, e in told] == [("delete", "d")]


async def test_another_users_documents_are_never_told() -> None:
    b = {"id": "b9", "userId": "bob"}
    b2 = {"id": "b9", "userId": "bob", "n": 1}
    told = await tell([ev("b9", 1, b, "insert"), ev("b9", 2, b2, "update", before=b),
                       ev("b9", 3, None, "delete", before=b2)], WHERE, alice_reads)
    assert told == []


async def test_what_matches_at_the_end_is_an_update_of_its_last_state() -> None:
    a = {"id": "a", "userId": "alice"}
    a2 = {"id": "a", "userId": "alice", "n": 2}
    told = await tell([ev("a", 1, a, "insert"), ev("a", 2, a2, "update", before=a)], WHERE, alice_reads)
    assert [(k, e.doc) for k, e in told] == [("update", a2)]
