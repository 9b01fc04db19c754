"""A whole stack for tests: db worker + gateway on one real NATS, over a chosen database."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Config, parse
from tests.support.databases import database_url
from tests.support.servers import RunningGateway, gateway, project_config
from worker import DbWorker

DATABASES = ("sqlite", "postgres", "mysql", "mongo")
ALIASES = {"sqlite": "sqlite", "postgres": "sql-postgres", "mysql": "sql-mysql", "mongo": "mongo"}
"""The alias each database is served under (the official client's names where it has them)."""


def database_params() -> list[Any]:
    marks = {"postgres": [pytest.mark.postgres], "mysql": [pytest.mark.mysql]}
    return [pytest.param(db, id=db, marks=marks.get(db, [])) for db in DATABASES]


async def conn_for(db: str, tmp: Path) -> str:
    if db == "sqlite":
        return str(tmp / "stack.db")
    if db == "mongo":
        return f"mongomock://{uuid.uuid4().hex}"
    return await database_url(f"{db}-schemaless")


@dataclass
class Stack:
    gw: RunningGateway
    http: httpx.AsyncClient
    project: str
    alias: str
    id: str
    """The primary-key field: `_id` on Mongo, `id` on SQL."""
    config: Config | None = None
    names: dict[str, str] = field(default_factory=dict)
    """Per-run names of collections that have rules (databases are shared between runs)."""

    def crud(self, col: str, op: str) -> str:
        return f"/v1/api/{self.project}/crud/{self.alias}/{col}/{op}"


@contextlib.asynccontextmanager
async def stack(db: str, tmp: Path, nats_url: str, *, collections: dict[str, Any] | None = None,
                auth: dict[str, Any] | None = None, functions: dict[str, Any] | None = None,
                project: str | None = None, settings: dict[str, Any] | None = None) -> AsyncIterator[Stack]:
    project = project or "p" + uuid.uuid4().hex[:10]
    alias = ALIASES[db]
    crud = {alias: {"type": db, "conn": await conn_for(db, tmp), "collections": collections or {}}}
    raw = project_config(project, crud=crud, functions=functions)
    if auth is not None:
        raw["projects"][0]["modules"]["auth"] = auth
    cfg = parse(raw, env={}, base=tmp)
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    try:
        async with (
            gateway(cfg, nats_url, settings=settings) as gw,
            httpx.AsyncClient(base_url=gw.url, timeout=15) as http,
        ):
            yield Stack(gw, http, project, alias, "_id" if db == "mongo" else "id", cfg)
    finally:
        await worker.stop()
