"""`DbWorker`: serves `sc.<project>.db.<alias>.<kind>` (queue group `sc.db`) and publishes change events.

Project and alias come from the subject, the request from a `DbRequest`; after every successful
write one `ChangeEvent` per affected document goes to `sc.<project>.changes.<alias>.<col>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from adapters.base import Adapter, Change, ReadOptions, WriteRequest
from adapters.registry import create_adapter
from common.errors import BadRequest, NotFound
from mesh import subjects
from mesh.codec import pack
from mesh.connect import NatsTarget, connect, disconnect
from mesh.messages import ChangeEvent, DbRequest
from mesh.service import MicroService
from worker.spec import DatabaseSpec

log = logging.getLogger("space_cloud.worker")

SERVICE_NAME = "sc-db"
SYSTEM_PROJECT = "_system"
"""The project the worker's discovery entry is listed under."""

WRITES = ("create", "update", "delete", "batch")


def change_event(change: Change) -> ChangeEvent:
    return ChangeEvent(type=change.type, id=change.id, doc=change.doc, version=change.version,
                       time=int(time.time() * 1000))


def read_options(raw: dict[str, Any]) -> ReadOptions:
    return ReadOptions(
        select=raw.get("select"), sort=raw.get("sort"), skip=raw.get("skip"),
        limit=raw.get("limit"), distinct=raw.get("distinct"), versions=raw.get("versions") is True,
    )


class DbWorker:
    def __init__(self, nats_url: str | NatsTarget, *, databases: list[DatabaseSpec], max_concurrency: int = 256
                 ) -> None:
        self._url = nats_url
        self._specs = {(d.project, d.alias): d for d in databases}
        self._adapters: dict[tuple[str, str], Adapter] = {}
        self._connect_lock = asyncio.Lock()
        self._max_concurrency = max_concurrency
        self._nc: Client | None = None
        self._service: MicroService | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._nc = await connect(self._url, name="space-cloud-worker")
        self._service = MicroService(
            self._nc, name=SERVICE_NAME, queue_group=subjects.DB_QUEUE, max_concurrency=self._max_concurrency,
            description="space-cloud db worker", metadata={"project": SYSTEM_PROJECT, "kind": "db-worker"},
        )
        self._service.add_endpoint("db", subjects.db_all(), self._handle)
        await self._service.start()
        log.info("db worker serving %d database(s)", len(self._specs))

    async def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.stop(drain_timeout=10)
        for adapter in self._adapters.values():
            with contextlib.suppress(Exception):
                await adapter.close()
        self._adapters.clear()
        nc, self._nc = self._nc, None
        await disconnect(nc)

    def update(self, databases: list[DatabaseSpec]) -> None:
        """New config: databases whose spec changed are reconnected on next use."""
        specs = {(d.project, d.alias): d for d in databases}
        for key in list(self._adapters):
            if specs.get(key) != self._specs.get(key):
                adapter = self._adapters.pop(key)
                task = asyncio.get_running_loop().create_task(adapter.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
        self._specs = specs

    async def _adapter(self, project: str, alias: str) -> Adapter:
        adapter = self._adapters.get((project, alias))
        if adapter is not None:
            return adapter
        spec = self._specs.get((project, alias))
        if spec is None:
            raise NotFound(f"database {alias!r} is not configured for project {project!r}")
        async with self._connect_lock:
            adapter = self._adapters.get((project, alias))
            if adapter is None:
                adapter = create_adapter(
                    spec.type, spec.conn, collections=spec.typed_collections(), database=spec.database or project,
                )
                await adapter.connect()
                self._adapters[(project, alias)] = adapter
        return adapter

    async def _handle(self, msg: Msg) -> bytes:
        project, alias, kind = subjects.parse_db(msg.subject)
        req = DbRequest.decode(msg.data)
        adapter = await self._adapter(project, alias)
        return pack(await self._run(adapter, project, alias, kind, req))

    async def _run(self, adapter: Adapter, project: str, alias: str, kind: str, req: DbRequest) -> Any:
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
        await self._publish(project, alias, changes)
        return {}

    async def _publish(self, project: str, alias: str, changes: list[tuple[str, Change]]) -> None:
        nc = self._nc
        if nc is None:
            return
        for col, change in changes:
            await nc.publish(subjects.changes(project, alias, col), change_event(change).encode())


async def run_worker(nats_url: str | NatsTarget, databases: list[DatabaseSpec]) -> None:
    worker = DbWorker(nats_url, databases=databases)
    await worker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await worker.stop()
