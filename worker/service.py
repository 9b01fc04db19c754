"""`DbWorker`: serves `sc.<project>.db.<alias>.<kind>` (queue group `sc.db`) and publishes change events.

Project and alias come from the subject, the request from a `DbRequest`; after every successful
write one `ChangeEvent` per affected document goes to `sc.<project>.changes.<alias>.<col>`.

Every alias is a `worker.databases.Database` of its own: its connect, its concurrency, its breaker.
One alias that hangs or fails never holds a turn of another. The service runtime (`mesh.service`)
gives each request its deadline (the caller's budget); the worker hands it to the adapter
(`adapters.deadline`) and a request that cannot finish in time is cancelled and answered 504. A
write cancelled that way is rolled back, unless its commit had already been sent; one that commits
anyway still publishes its change events and is logged and counted as a late commit
(docs/operations.md: what a 504 means for a write).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from adapters import deadline as db_deadline
from adapters.base import Adapter, Change, ReadOptions, WriteRequest
from common.errors import BadRequest, NotFound, ServiceUnavailable, SpaceCloudError, Timeout
from mesh import context, subjects
from mesh.codec import pack
from mesh.connect import NatsTarget, connect, disconnect
from mesh.messages import DbRequest
from mesh.service import MicroService
from worker.changelog import ChangeLog, ChangeLogOptions
from worker.databases import Database
from worker.http import StatusServer
from worker.metrics import WorkerMetrics
from worker.spec import DatabaseSpec

log = logging.getLogger("space_cloud.worker")

SERVICE_NAME = "sc-db"
SYSTEM_PROJECT = "_system"
"""The project the worker's discovery entry is listed under."""

WRITES = ("create", "update", "delete", "batch")
MONGO_WRITE_UNKNOWN = "; the write may or may not have been applied: read it back to know (see docs/operations.md)"
"""A Mongo write cannot be held back at a commit point: a timeout cannot say it was rolled back."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a request that carries no budget (`Sc-Timeout`) may take."""


def read_options(raw: dict[str, Any]) -> ReadOptions:
    return ReadOptions(
        select=raw.get("select"), sort=raw.get("sort"), skip=raw.get("skip"),
        limit=raw.get("limit"), distinct=raw.get("distinct"), versions=raw.get("versions") is True,
    )


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, ServiceUnavailable):
        return "unavailable"
    if isinstance(exc, SpaceCloudError) and exc.status < 500:
        return "client_error"
    return "error"


class DbWorker:
    def __init__(
        self,
        nats_url: str | NatsTarget,
        *,
        databases: list[DatabaseSpec],
        alias_concurrency: int = 64,
        alias_queue: int = 256,
        connect_timeout: float = 5.0,
        default_timeout: float = DEFAULT_TIMEOUT,
        metrics_port: int | None = None,
        metrics_host: str = "0.0.0.0",
        changelog: ChangeLogOptions | None = None,
    ) -> None:
        """`alias_concurrency`/`alias_queue`: per (project, alias), requests run at once and waiting for a
        turn (beyond: 503 at once). `metrics_port`: serve `/metrics` and `/healthz` there (0: any free port).
        `changelog`: how change events reach the log (`worker.changelog`)."""
        self._url = nats_url
        self._limits = {"limit": alias_concurrency, "queue": alias_queue, "connect_timeout": connect_timeout}
        self._dbs = {(d.project, d.alias): self._database(d) for d in databases}
        self._default_timeout = default_timeout
        self.metrics = WorkerMetrics(lambda: list(self._dbs.values()))
        self._status = (StatusServer(self.metrics.registry, self.health, host=metrics_host, port=metrics_port)
                        if metrics_port is not None else None)
        self._nc: Client | None = None
        self._service: MicroService | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.changelog = ChangeLog(changelog or ChangeLogOptions(), lambda: self._dbs)

    def _database(self, spec: DatabaseSpec) -> Database:
        return Database(spec, limit=int(self._limits["limit"]), queue=int(self._limits["queue"]),
                        connect_timeout=float(self._limits["connect_timeout"]))

    @property
    def databases(self) -> dict[tuple[str, str], Database]:
        return self._dbs

    @property
    def status_port(self) -> int | None:
        return self._status.port if self._status is not None else None

    async def start(self) -> None:
        self._nc = await connect(self._url, name="space-cloud-worker")
        # No cap for the whole instance: every alias bounds itself, so a stuck one cannot fill a shared pool.
        self._service = MicroService(
            self._nc, name=SERVICE_NAME, queue_group=subjects.DB_QUEUE, max_concurrency=None,
            default_timeout=self._default_timeout,
            description="space-cloud db worker", metadata={"project": SYSTEM_PROJECT, "kind": "db-worker"},
        )
        self._service.add_endpoint("db", subjects.db_all(), self._handle, data=self._stats_data,
                                   timeout_text=self._timeout_text)
        await self._service.start()
        await self.changelog.start(self._nc)
        if self._status is not None:
            await self._status.start()
        log.info("db worker serving %d database(s)", len(self._dbs))

    async def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.stop(drain_timeout=10)
        if self._status is not None:
            await self._status.stop()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5)
        await self.changelog.stop()
        for db in self._dbs.values():
            await db.close()
        nc, self._nc = self._nc, None
        await disconnect(nc)

    def update(self, databases: list[DatabaseSpec]) -> None:
        """New config: databases whose spec changed start afresh (connected on next use)."""
        old, new = self._dbs, {}
        for spec in databases:
            key = (spec.project, spec.alias)
            kept = old.get(key)
            new[key] = kept if kept is not None and kept.spec == spec else self._database(spec)
        self._dbs = new
        self.changelog.sync()
        for key, db in old.items():
            if new.get(key) is not db:
                self._later(db.close())

    def _later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- status -----------------------------------------------------------------------------------

    def _stats_data(self) -> dict[str, Any]:
        return {"databases": [db.health() for db in self._dbs.values()]}

    def health(self) -> tuple[int, dict[str, object]]:
        """200 while connected to NATS and serving (a failing database is reported, not fatal)."""
        serving = self._service is not None and self._nc is not None and self._nc.is_connected
        return (200 if serving else 503), {"serving": serving, **self._stats_data()}

    def _timeout_text(self, msg: Msg, seconds: float) -> str:
        try:
            project, alias, kind = subjects.parse_db(msg.subject)
        except BadRequest:
            return f"{msg.subject} did not finish within {seconds:.3g}s and was cancelled"
        db = self._dbs.get((project, alias))
        label = db.label if db is not None else f"alias {alias} (project {project})"
        text = f"{label} did not finish a {kind} within {seconds:.3g}s and was cancelled"
        if kind in WRITES and db is not None and db.spec.type == "mongo":
            text += MONGO_WRITE_UNKNOWN
        elif kind in WRITES:
            text += ("; the write is rolled back, unless its commit had already been sent: then its change "
                     "events tell (see docs/operations.md)")
        return text

    # -- requests ---------------------------------------------------------------------------------

    async def _handle(self, msg: Msg) -> bytes:
        project, alias, kind = subjects.parse_db(msg.subject)
        db = self._dbs.get((project, alias))
        if db is None:
            raise NotFound(f"database {alias!r} is not configured for project {project!r}")
        req = DbRequest.decode(msg.data)
        at = context.deadline()
        start = time.perf_counter()
        try:
            entered = await db.bulkhead.enter(at)
        except TimeoutError:
            self.metrics.op(db, kind, "expired").inc()
            raise Timeout(f"{db.label}: the request's deadline passed while it waited for a turn "
                          f"({db.bulkhead.limit} running); it was dropped before it started") from None
        if not entered:
            self.metrics.op(db, kind, "busy").inc()
            raise ServiceUnavailable(f"{db.label} is busy: {db.bulkhead.limit} requests running and "
                                     f"{db.bulkhead.queue} waiting (its limits: --db-concurrency, --db-queue)")
        try:
            if at is not None and time.monotonic() >= at:
                self.metrics.op(db, kind, "expired").inc()
                raise Timeout(f"{db.label}: the request's deadline passed before it started; it was dropped")
            try:
                adapter = await db.get(at)  # (its breaker learns of connects by itself)
            except SpaceCloudError as exc:
                self.metrics.op(db, kind, _outcome(exc)).inc()
                raise
            self.changelog.attach(db, adapter)
            try:
                token = db_deadline.set_deadline(at)
                try:
                    result = await self._run(db, adapter, kind, req)
                finally:
                    db_deadline.reset_deadline(token)
            except asyncio.CancelledError:
                self.metrics.op(db, kind, "timeout").inc()
                db.outcome(Timeout("cancelled at its deadline"))
                raise
            except Exception as exc:
                outcome = _outcome(exc)
                self.metrics.op(db, kind, outcome).inc()
                if outcome in ("unavailable", "timeout"):
                    db.outcome(exc)
                    if isinstance(exc, SpaceCloudError) and db.label not in exc.message:
                        note = MONGO_WRITE_UNKNOWN if (isinstance(exc, Timeout) and kind in WRITES
                                                       and db.spec.type == "mongo") else ""
                        raise type(exc)(f"{db.label}: {exc.message}{note}") from exc
                raise
            db.outcome(None)
            self.metrics.op(db, kind, "ok").inc()
            return pack(result)
        finally:
            db.bulkhead.leave()
            self.metrics.timer(db, kind).observe(time.perf_counter() - start)

    async def _run(self, db: Database, adapter: Adapter, kind: str, req: DbRequest) -> Any:
        col, op = req.col, req.op
        if kind == "read":
            return await adapter.read(col, op, req.find, read_options(req.options))
        if kind == "aggr":
            return await adapter.aggregate(col, op, req.pipe)
        if kind not in WRITES:
            raise BadRequest(f"unknown db operation {kind!r}")
        if kind == "create":
            given = req.doc if isinstance(req.doc, list) else [req.doc]
            docs = [d for d in given if isinstance(d, dict)]
            if len(docs) != len(given):
                raise BadRequest("`doc` must be an object (op one) or a list of objects (op all)")
            changes = [(col, c) for c in await adapter.create(col, docs)]
        elif kind == "update":
            changes = [(col, c) for c in await adapter.update(col, op, req.find, req.update or {})]
        elif kind == "delete":
            changes = [(col, c) for c in await adapter.delete(col, op, req.find)]
        else:
            try:
                reqs = [WriteRequest(**r) for r in req.reqs]
            except TypeError:
                raise BadRequest("malformed batch request") from None
            only = reqs[0].col if len({r.col for r in reqs}) == 1 else ""
            changes = [(c.col or only, c) for c in await adapter.batch(reqs)]
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Committed while being cancelled at its deadline: the caller was told 504. Say so, and
            # publish its change events from a task of their own (this one is being cancelled).
            self.metrics.late.child(db.spec.project, db.spec.alias).inc()
            log.warning("%s: a %s committed after its deadline (its caller was answered 504); its %d change "
                        "event(s) are published", db.label, kind, len(changes))
            self._publish(db, adapter, changes)
            return {}
        self._publish(db, adapter, changes)
        return {}

    def _publish(self, db: Database, adapter: Adapter, changes: list[tuple[str, Change]]) -> None:
        """Into the change log (`worker.changelog`: the outbox's relay, or the worker's own publisher)."""
        self.changelog.committed(db, adapter, changes)
        if changes:
            self.metrics.events.child(db.spec.project, db.spec.alias).inc(len(changes))


async def run_worker(nats_url: str | NatsTarget, databases: list[DatabaseSpec], **options: Any) -> None:
    """Run a worker until SIGINT/SIGTERM (`options`: `DbWorker`'s keyword arguments)."""
    worker = DbWorker(nats_url, databases=databases, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before starting: a stop asked for meanwhile is kept
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        await stop.wait()
    finally:
        await worker.stop()
