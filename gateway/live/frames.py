"""Space Cloud's realtime frames (`FeedData`), with time derived from document versions."""

from __future__ import annotations

import time
from typing import Any

import orjson

from ..wsraw import text_frame


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


def feed_tail(did: str, kind: str, payload: Any, t: int, col: str, alias: str, cursor: str | None = None) -> str:
    """Everything of a feed frame but the live-query id: serialised once per event and query. `cursor`
    (the change log position, for a resume) is a field the official client ignores."""
    data = {"docId": did, "type": kind, "payload": payload, "time": t, "group": col, "dbType": alias}
    if cursor is not None:
        data["cursor"] = cursor
    return "," + orjson.dumps(data)[1:].decode() + "}"


def feed_text(qid: str, tail: str) -> str:
    """The whole `realtime-feed` push for one subscriber, from a shared tail."""
    return _PUSH_HEAD + orjson.dumps(qid).decode() + tail


def feed(qid: str, did: str, kind: str, payload: Any, t: int, col: str, alias: str) -> dict[str, Any]:
    return {"id": qid, "docId": did, "type": kind, "payload": payload, "time": t, "group": col, "dbType": alias}


class SharedFeed:
    """One change of one live query for all its subscribers (a `gateway.peer.FeedFrame`): each transport's
    encoding is made once, on first use, whatever the number of sockets and streams."""

    __slots__ = ("_frame", "_json", "_qid", "_tail", "_text", "cursor", "db_type", "doc_id", "group", "kind",
                 "payload", "time")

    def __init__(self, did: str, kind: str, payload: Any, t: int, col: str, alias: str, cursor: str | None = None
                 ) -> None:
        self.doc_id, self.kind, self.payload, self.time, self.group, self.db_type = did, kind, payload, t, col, alias
        self.cursor = cursor
        self._tail: str | None = None
        self._json: bytes | None = None
        self._qid: str | None = None
        self._text = ""
        self._frame: bytes | None = None

    def ws_text(self, qid: str) -> str:
        if qid != self._qid:  # subscribers of one query mostly use the same live query id: made once for them
            if self._tail is None:
                self._tail = feed_tail(self.doc_id, self.kind, self.payload, self.time, self.group, self.db_type,
                                       self.cursor)
            self._qid, self._text, self._frame = qid, feed_text(qid, self._tail), None
        return self._text

    def ws_frame(self, qid: str) -> bytes:
        text = self.ws_text(qid)
        if self._frame is None:
            self._frame = text_frame(text.encode())
        return self._frame

    def payload_json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.payload)
        return self._json
