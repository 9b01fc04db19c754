"""Space Cloud's realtime frames (`FeedData`), with time derived from document versions."""

from __future__ import annotations

import time
from typing import Any


def doc_id(value: Any) -> str | None:
    """The string form of an id; ints and integral floats are accepted, anything else is not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def feed_time(version: int | None) -> int:
    """Milliseconds that never decrease for one document: versions are microsecond hybrid clocks."""
    if version and version > 10**14:
        return version // 1000
    return int(time.time() * 1000)


def feed(qid: str, did: str, kind: str, payload: Any, t: int, col: str, alias: str) -> dict[str, Any]:
    return {"id": qid, "docId": did, "type": kind, "payload": payload, "time": t, "group": col, "dbType": alias}
