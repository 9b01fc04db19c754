"""The db worker: a NATS service (queue group `sc.db`) that owns the connection pools.

Requests arrive on `sc.<project>.db.<alias>.<op>`; after every successful write the worker
publishes one change event per affected document on `sc.<project>.changes.<alias>.<col>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from nats.aio.client import Client

from adapters.base import Adapter, Change, ReadOptions, WriteRequest
from adapters.registry import create_adapter
from common.errors import BadRequest, NotFound

from . import subjects
from .codec import pack
from .connect import connect, disconnect
from .service import Auth, FunctionService
from .worker_spec import DatabaseSpec

log = logging.getLogger("space_cloud.worker")

SYSTEM_PROJECT = "_system"


def change_event(change: Change, *, alias: str, col: str) -> dict[str, Any]:
    return {
        "type": change.type,
        "id": change.id,
        "doc": change.doc,
        "version": change.version,
        "time": int(time.time() * 1000),
        "alias": alias,
        "col": col,
    }


def _options(raw: Any) -> ReadOptions:
    if raw is None:
        return ReadOptions()
    if not isinstance(raw, dict):
        raise BadRequest("`options` must be an object")
    return ReadOptions(
        select=raw.get("select"), sort=raw.get("sort"), skip=raw.get("skip"),
        limit=raw.get("limit"), distinct=raw.get("distinct"), versions=raw.get("versions") is True,
    )


class DbWorker:
    def __init__(self, nats_url: str, *, databases: list[DatabaseSpec], max_concurrency: int = 256) -> None:
        self._url = nats_url
        self._specs = {(d.project, d.alias): d for d in databases}
        self._adapters: dict[tuple[str, str], Adapter] = {}
        self._connect_lock = asyncio.Lock()
        self._max_concurrency = max_concurrency
        self._nc: Client | None = None
        self._service: FunctionService | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._nc = await connect(self._url, name="space-cloud-worker")
        self._service = FunctionService(
            self._nc,
            project=SYSTEM_PROJECT,
            name="sc-db",
            any_function=self._handle,
            any_subject=subjects.db_all(),
            queue_group=subjects.DB_QUEUE,
            max_concurrency=self._max_concurrency,
            metadata={"kind": "db-worker"},
        )
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
                    spec.type, spec.conn, collections=_typed_collections(spec.collections),
                    database=spec.database or project,
                )
                await adapter.connect()
                self._adapters[(project, alias)] = adapter
        return adapter

    async def _handle(self, op: str, params: Any, _auth: Auth) -> Any:
        if not isinstance(params, dict):
            raise BadRequest("malformed db request")
        project, alias = params.get("project"), params.get("alias")
        if not isinstance(project, str) or not isinstance(alias, str):
            raise BadRequest("malformed db request: project and alias are required")
        adapter = await self._adapter(project, alias)
        return await self._run(adapter, project, alias, op, params)

    async def _run(self, adapter: Adapter, project: str, alias: str, op: str, req: dict[str, Any]) -> Any:
        col = req.get("col", "")
        kind = req.get("op", "all")
        if op == "read":
            return await adapter.read(col, kind, req.get("find") or {}, _options(req.get("options")))
        if op == "aggr":
            return await adapter.aggregate(col, kind, req.get("pipe") or [])
        if op == "create":
            doc = req.get("doc")
            given = doc if isinstance(doc, list) else [doc]
            docs = [d for d in given if isinstance(d, dict)]
            if len(docs) != len(given):
                raise BadRequest("`doc` must be an object (op one) or a list of objects (op all)")
            changes = await adapter.create(col, docs)
            await self._publish(project, alias, [(col, c) for c in changes])
            return {}
        if op == "update":
            changes = await adapter.update(col, kind, req.get("find") or {}, req.get("update") or {})
            await self._publish(project, alias, [(col, c) for c in changes])
            return {}
        if op == "delete":
            changes = await adapter.delete(col, kind, req.get("find") or {})
            await self._publish(project, alias, [(col, c) for c in changes])
            return {}
        if op == "batch":
            reqs = [WriteRequest(**r) for r in req.get("reqs") or []]
            changes = await adapter.batch(reqs)
            only = reqs[0].col if len({r.col for r in reqs}) == 1 else ""
            await self._publish(project, alias, [(c.col or only, c) for c in changes])
            return {}
        raise BadRequest(f"unknown db operation {op!r}")

    async def _publish(self, project: str, alias: str, changes: list[tuple[str, Change]]) -> None:
        nc = self._nc
        if nc is None:
            return
        for col, change in changes:
            await nc.publish(subjects.changes(project, alias, col), pack(change_event(change, alias=alias, col=col)))


def _typed_collections(collections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in collections.items() if isinstance(spec, dict) and spec.get("fields")}


async def run_worker(nats_url: str, databases: list[DatabaseSpec]) -> None:
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
