"""Change capture on Mongo, where the server offers change streams (a replica set, mongos, nx-27017):
every insert, update, replace and delete of the project's collections, whoever made it.

`MongoCapture` is what the worker's relay reads (like `adapters.sql.changelog.SqlCapture`): it holds
the database's lease (a document in `_sc_relay`, so one relay at a time watches), keeps one change
stream per collection (`Database.watch()` delivers nothing on nx-27017), reads what they have, and
stores each collection's resume token once its events are stored in the log, so a restarted relay
goes on where the last one stopped. Collections are found by listing the database now and then; a
collection's history starts when it is first watched (nx-27017 keeps none before).

The version of a change is the document's `_v` where it has one (writes through the API), else the
server's clock in microseconds; a delete is the last `_v` + 1 where the server tells the document
before (nx-27017 does, in `fullDocument`), else the clock.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from adapters.changes import Captured, ChangeType
from adapters.mongo import MongoAdapter
from adapters.mongo_errors import mongo_errors
from adapters.names import VERSION_FIELD
from adapters.sql.capture_ddl import LEASES, PREFIX

log = logging.getLogger("space_cloud.capture")

Policy = Callable[[str], bool]
RESCAN = 2.0
"""Seconds between looks for collections not watched yet."""
_KINDS: dict[str, ChangeType] = {"insert": "insert", "update": "update", "replace": "update", "delete": "delete"}


def _strip(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    return {k: v for k, v in doc.items() if k != VERSION_FIELD}


def _micros(value: Any) -> int:
    stamp = getattr(value, "timestamp", None)
    return int(stamp() * 1_000_000) if callable(stamp) else int(time.time() * 1_000_000)


class MongoCapture:
    keeps_lease = True

    def __init__(self, adapter: MongoAdapter, policy: Policy) -> None:
        self.adapter = adapter
        self.policy = policy
        self.supported: bool | None = None
        self._streams: dict[str, Any] = {}
        self._tokens: dict[str, Any] = {}
        self._scanned = 0.0
        self._seq = 0

    def covers(self, col: str) -> bool:  # the worker still publishes its own writes (same ids: stored once)
        return False

    async def _db(self) -> Any:
        await self.adapter.connect()
        return self.adapter._client[self.adapter.database]

    async def _state(self) -> Any:
        return (await self._db())[self.adapter.prefix + LEASES]

    async def any_pending(self) -> bool:
        if self.supported is None:
            self.supported = not self.adapter.fake and await self._probe()
            if not self.supported:
                log.info("%s: no change streams; writes made outside the API are not seen", self.adapter.database)
        return self.supported

    async def _probe(self) -> bool:
        try:
            async with await (await self._state()).watch(max_await_time_ms=1):
                return True
        except PyMongoError:
            return False

    async def claim(self, owner: str, *, ttl_ms: int, limit: int) -> list[Captured] | None:
        state = await self._state()
        now = int(time.time() * 1000)
        with mongo_errors():
            try:
                held = await state.find_one_and_update(
                    {"_id": "lease", "$or": [{"owner": owner}, {"until": {"$lt": now}}]},
                    {"$set": {"owner": owner, "until": now + ttl_ms}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                held = None
        if held is None or held.get("owner") != owner:
            await self._close()
            return None
        await self._watch_new()
        out: list[Captured] = []
        for col, stream in list(self._streams.items()):
            while len(out) < limit:
                try:
                    event = await stream.try_next()
                except PyMongoError as exc:
                    log.info("change stream of %s broke (%s): opened again", col, exc)
                    self._streams.pop(col, None)
                    with contextlib.suppress(PyMongoError):
                        await stream.close()
                    break
                if event is None:
                    break
                captured = self._captured(col, event)
                if captured is not None:
                    out.append(captured)
        return out

    def _captured(self, col: str, event: dict[str, Any]) -> Captured | None:
        kind = _KINDS.get(str(event.get("operationType")))
        key = (event.get("documentKey") or {}).get("_id")
        if kind is None or key is None:
            return None
        full = event.get("fullDocument")
        before_raw = event.get("fullDocumentBeforeChange") or (full if kind == "delete" else None)
        clock = _micros(event.get("wallTime") or event.get("clusterTime"))
        if kind == "delete":
            last = before_raw.get(VERSION_FIELD) if isinstance(before_raw, dict) else None
            version = int(last) + 1 if isinstance(last, int) else clock
            doc = None
        else:
            v = full.get(VERSION_FIELD) if isinstance(full, dict) else None
            version = int(v) if isinstance(v, int) else clock
            doc = _strip(full)
            if doc is None:
                return None
        self._seq += 1
        return Captured(self._seq, col, kind, key if isinstance(key, str | int) else str(key), doc,
                        _strip(before_raw) if kind != "insert" else None, version, clock // 1000,
                        token=(col, event.get("_id")))

    async def _watch_new(self) -> None:
        if time.monotonic() - self._scanned < RESCAN and self._streams:
            return
        self._scanned = time.monotonic()
        db, prefix = await self._db(), self.adapter.prefix
        state = await self._state()
        with mongo_errors():
            names = await db.list_collection_names()
        for name in names:
            if not name.startswith(prefix) or name.startswith("system."):
                continue
            col = name[len(prefix):]
            if col.startswith(PREFIX) or "." in col or col in self._streams or not self.policy(col):
                continue
            with mongo_errors():
                saved = await state.find_one({"_id": f"token:{col}"})
                token = saved.get("token") if saved else None
                try:
                    stream = await db[name].watch(full_document="updateLookup", resume_after=token)
                except PyMongoError:
                    stream = await db[name].watch(full_document="updateLookup")  # its token is too old: now
                self._streams[col] = stream
                if token is None:
                    await state.update_one({"_id": f"token:{col}"}, {"$set": {"token": stream.resume_token}},
                                           upsert=True)

    async def trim(self, owner: str, done: list[Captured], *, release: bool) -> None:
        last: dict[str, Any] = {}
        for c in done:
            if isinstance(c.token, tuple):
                last[c.token[0]] = c.token[1]
        state = await self._state()
        with mongo_errors():
            for col, token in last.items():
                await state.update_one({"_id": f"token:{col}"}, {"$set": {"token": token}}, upsert=True)
            if release:
                await state.update_one({"_id": "lease", "owner": owner}, {"$set": {"until": 0}})

    async def _close(self) -> None:
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            with contextlib.suppress(PyMongoError):
                await stream.close()

    async def close(self) -> None:
        await self._close()
