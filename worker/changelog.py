"""The worker's side of the change log: every committed write becomes change events in JetStream, once.

- SQL (PostgreSQL, MySQL/MariaDB, SQLite): triggers capture each row change into the namespace's
  outbox inside the writing transaction (`adapters.sql.changelog`). A `SqlRelay` per database reads
  the outbox in order, publishes with acknowledgements and `Nats-Msg-Id` de-duplication ids, trims
  what is stored, and retries the rest; one relay at a time holds the outbox's lease, so several
  workers never publish the same rows side by side (and the ids make a retried publish harmless).
  A commit kicks the local relay at once; a poll picks up writes made outside the API and what a
  worker that died after its commit left behind.
- Mongo, where the server has change streams: the relay reads them instead of an outbox
  (`adapters.mongo_changes`), for writes made outside the API and those of a worker that died.
- The worker also publishes itself what it wrote and nothing captured (Mongo, a collection whose
  capture is off or failed), after the write, with the same acknowledgements and retries, from a
  bounded queue (`DirectPublisher`). De-duplication ids are made of the change itself (collection,
  document, kind, version), so a change published both ways is stored once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import Error as NatsError

from adapters.base import Adapter, Change
from adapters.changes import Captured, ChangeSource
from adapters.mongo import MongoAdapter
from adapters.mongo_changes import MongoCapture
from adapters.names import collection_key
from adapters.sql.adapter import SqlAdapter
from adapters.sql.changelog import SqlCapture
from common.errors import ServiceUnavailable, SpaceCloudError
from mesh import subjects
from mesh.changelog import EXPECTED_STREAM, MSG_ID, STREAM, LogSettings, ensure_stream, msg_id
from mesh.messages import ChangeEvent
from worker.databases import Database

log = logging.getLogger("space_cloud.changelog")

RELAYED = ("postgres", "mysql", "sqlite", "mongo")
EXIT_AFTER_COMMITS_ENV = "SPACE_CLOUD_TEST_EXIT_AFTER_COMMITS"
"""Read by `space-cloud worker` only: `ChangeLogOptions.exit_after_commits`, for fault tests."""
CAPTURE_KEY = "captureOutsideWrites"
"""Per collection, `false`: no triggers (writes from outside the API are not seen; the worker publishes its own)."""


@dataclass(frozen=True)
class ChangeLogOptions:
    log: LogSettings = field(default_factory=LogSettings)
    poll: float = 0.5
    """Seconds between looks at an outbox (writes from outside the API, a crashed worker's leftovers)."""
    lease: float = 3.0
    """Seconds an outbox stays leased to a relay that stopped renewing it (it died mid-round)."""
    batch: int = 512
    publish_timeout: float = 3.0
    direct_queue: int = 100_000
    """Events the worker's own publisher holds while the log is unreachable; beyond, the oldest are dropped."""
    exit_after_commits: int | None = None
    """A fault-test hook: the process exits (status 70) right after its Nth committed write, before
    anything is published or answered (`space-cloud worker` reads `EXIT_AFTER_COMMITS_ENV`)."""


def captured(collections: dict[str, Any], col: str) -> bool:
    """Whether a collection's table gets triggers (`captureOutsideWrites`, on by default)."""
    spec = collections.get(col)
    if not isinstance(spec, dict):
        spec = next((s for n, s in collections.items() if n.lower() == col.lower() and isinstance(s, dict)), None)
    return not (isinstance(spec, dict) and spec.get(CAPTURE_KEY) is False)


class Publisher:
    """Appends events to the log and says which were stored (pipelined; the stream keeps their order)."""

    def __init__(self, settings: LogSettings, timeout: float) -> None:
        self.settings = settings
        self.timeout = timeout
        self.nc: Client | None = None
        self._stream_known = False

    async def ensure(self) -> None:
        if self.nc is None:
            raise ServiceUnavailable("not connected to NATS")
        await ensure_stream(self.nc, self.settings)
        self._stream_known = True

    async def publish(self, items: list[tuple[str, bytes, str]]) -> list[int | None]:
        """(subject, payload, de-duplication id) each; the stream sequence of each stored one, else None."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            return [None] * len(items)
        if not self._stream_known:
            with contextlib.suppress(SpaceCloudError, NatsError, TimeoutError):
                await self.ensure()
        results = await asyncio.gather(*(self._one(nc, *item) for item in items))
        if any(r is None for r in results):
            self._stream_known = False  # look again next time (it may have been deleted)
        return list(results)

    async def _one(self, nc: Client, subject: str, payload: bytes, mid: str) -> int | None:
        try:
            msg = await nc.request(subject, payload, timeout=self.timeout,
                                   headers={MSG_ID: mid, EXPECTED_STREAM: STREAM})
        except (NatsError, TimeoutError):
            return None
        try:
            ack = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return None
        seq = ack.get("seq") if isinstance(ack, dict) and "error" not in ack else None
        return int(seq) if isinstance(seq, int) else None


def event_of(c: Captured) -> ChangeEvent:
    return ChangeEvent(type=c.type, id=c.id, doc=c.doc, version=c.version, time=c.time, before=c.before)


def dedup_id(project: str, alias: str, col: str, doc_id: str | int, kind: str, version: int) -> str:
    """The same change gets the same id whoever publishes it (the relay, or the worker after its write)."""
    return msg_id(project, alias, col, doc_id, kind, version)


class Relay:
    """Drains one database's captured changes into the log, in order, while it holds their lease."""

    def __init__(self, db: Database, owner: ChangeLog) -> None:
        self.db = db
        self.log = owner
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop (not waiting long for a database call that cannot finish: its connection may be stuck)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=2)

    def kick(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        backoff = 0.0
        options = self.log.options
        while True:
            if backoff:
                await asyncio.sleep(backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), options.poll)
            self._wake.clear()
            try:
                adapter = await self.db.get(None)
                capture = self.log.attach(self.db, adapter)
                if capture is not None:
                    while await self._round(capture):
                        pass
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.2), 5.0)
                text = exc.message if isinstance(exc, SpaceCloudError) else f"{type(exc).__name__}: {exc}"
                log.warning("%s: change relay: %s (retrying in %.1fs)", self.db.label, text, backoff)

    async def _round(self, capture: ChangeSource) -> bool:
        """One batch from the outbox to the log; True when there may be more right away."""
        options = self.log.options
        if not await capture.any_pending():
            return False
        rows = await capture.claim(self.log.owner, ttl_ms=int(options.lease * 1000), limit=options.batch)
        if rows is None:  # another relay is on it; look again shortly (its round may have missed ours)
            await asyncio.sleep(0.05)
            return True
        spec = self.db.spec
        items = [(subjects.changes(spec.project, spec.alias, r.col), event_of(r).encode(),
                  dedup_id(spec.project, spec.alias, r.col, r.id, r.type, r.version)) for r in rows]
        seqs = await self.log.publisher.publish(items) if items else []
        stored = [r for r, s in zip(rows, seqs, strict=True) if s is not None]
        finished = len(stored) == len(rows) and len(rows) < options.batch
        release = (finished and not capture.keeps_lease) or len(stored) < len(rows)
        await capture.trim(self.log.owner, stored, release=release)
        self.published += len(stored)
        if len(stored) < len(rows):
            raise ServiceUnavailable(f"the change log stored {len(stored)} of {len(rows)} changes")
        return not finished


class DirectPublisher:
    """The worker's own writes' events, where nothing captured them: queued in order, published until stored."""

    def __init__(self, owner: ChangeLog) -> None:
        self.log = owner
        self._queue: collections.deque[tuple[str, bytes, str]] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float = 5.0) -> None:
        """Publish what is queued (for up to `timeout`), then stop."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:  # noqa: ASYNC110 (the task empties it)
            await asyncio.sleep(0.02)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def put(self, item: tuple[str, bytes, str]) -> None:
        if len(self._queue) >= self.log.options.direct_queue:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("change log unreachable for long: %d change event(s) dropped", self.dropped)
        self._queue.append(item)
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            batch = [self._queue[i] for i in range(min(len(self._queue), self.log.options.batch))]
            seqs = await self.log.publisher.publish(batch)
            kept = [item for item, s in zip(batch, seqs, strict=True) if s is None]
            for _ in batch:
                self._queue.popleft()
            self._queue.extendleft(reversed(kept))
            if kept:
                backoff = min(max(backoff * 2, 0.1), 5.0)
                await asyncio.sleep(backoff)
            else:
                backoff = 0.0


class ChangeLog:
    """Every database's relay, the worker's own publisher, and the hooks the worker calls around writes."""

    def __init__(self, options: ChangeLogOptions, databases: Callable[[], dict[tuple[str, str], Database]]) -> None:
        self.options = options
        self._databases = databases
        self.owner = uuid.uuid4().hex
        self.publisher = Publisher(options.log, options.publish_timeout)
        self.direct = DirectPublisher(self)
        self.relays: dict[tuple[str, str], Relay] = {}
        self._commits = 0
        self._started = False
        self._mongo: dict[int, MongoCapture] = {}

    async def start(self, nc: Client) -> None:
        self.publisher.nc = nc
        try:
            await self.publisher.ensure()
        except (SpaceCloudError, NatsError, TimeoutError) as exc:
            log.warning("change log not ready yet (%s): retrying as changes come", exc)
        self.direct.start()
        self._started = True
        self.sync()

    async def stop(self) -> None:
        self._started = False
        for relay in list(self.relays.values()):
            await relay.stop()
        self.relays.clear()
        await self.direct.stop()

    def sync(self) -> None:
        """Relays for the configured SQL databases (the config changed, or the worker started)."""
        if not self._started:
            return
        dbs = self._databases()
        for key, relay in list(self.relays.items()):
            if dbs.get(key) is not relay.db:
                self.relays.pop(key)
                asyncio.get_running_loop().create_task(relay.stop())
        for key, db in dbs.items():
            if key not in self.relays and db.spec.type in RELAYED:
                relay = self.relays[key] = Relay(db, self)
                relay.start()

    def attach(self, db: Database, adapter: Adapter) -> ChangeSource | None:
        """Change capture on an adapter, set before its first use (SQL: triggers; Mongo: change streams)."""
        collections = db.spec.collections
        if isinstance(adapter, SqlAdapter):
            if not isinstance(adapter.capture, SqlCapture):
                adapter.capture = SqlCapture(adapter, lambda col: captured(collections, col))
            return adapter.capture
        if isinstance(adapter, MongoAdapter):
            source = self._mongo.get(id(adapter))
            if source is None or source.adapter is not adapter:
                source = self._mongo[id(adapter)] = MongoCapture(adapter, lambda col: captured(collections, col))
            return source
        return None

    def committed(self, db: Database, adapter: Adapter, changes: list[tuple[str, Change]]) -> None:
        """After a committed write: kick the relay for what triggers captured, queue the rest."""
        if self.options.exit_after_commits is not None:
            self._commits += 1
            if self._commits >= self.options.exit_after_commits:
                log.warning("fault-test hook: exiting right after commit %d, before publishing", self._commits)
                os._exit(70)
        if not changes:
            return
        capture = self.attach(db, adapter)
        spec = db.spec
        kicked = False
        for col, change in changes:
            if capture is not None and capture.covers(col):
                kicked = True
                continue
            key = collection_key(spec.type, col)
            event = ChangeEvent(type=change.type, id=change.id, doc=change.doc, version=change.version,
                                time=int(time.time() * 1000), before=change.before)
            self.direct.put((subjects.changes(spec.project, spec.alias, key), event.encode(),
                             dedup_id(spec.project, spec.alias, key, change.id, change.type, change.version)))
        relay = self.relays.get((spec.project, spec.alias))
        if kicked and relay is not None:
            relay.kick()
