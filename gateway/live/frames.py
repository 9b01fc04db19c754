"""Space Cloud's realtime frames (`FeedData`), with time derived from document versions."""

from __future__ import annotations

import time
from typing import Any

import orjson


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


_PUSH_HEAD = '{"id":"","type":"realtime-feed","data":{"id":'


def feed_tail(did: str, kind: str, payload: Any, t: int, col: str, alias: str) -> str:
    """Everything of a feed frame but the live-query id: serialised once per event and query."""
    body = orjson.dumps({"docId": did, "type": kind, "payload": payload, "time": t, "group": col, "dbType": alias})
    return "," + body[1:].decode() + "}"


def feed_text(qid: str, tail: str) -> str:
    """The whole `realtime-feed` push for one subscriber, from a shared tail."""
    return _PUSH_HEAD + orjson.dumps(qid).decode() + tail


def feed(qid: str, did: str, kind: str, payload: Any, t: int, col: str, alias: str) -> dict[str, Any]:
    return {"id": qid, "docId": did, "type": kind, "payload": payload, "time": t, "group": col, "dbType": alias}
