"""Space Cloud's CRUD API over HTTP: `POST /v1/api/<project>/crud/<alias>/<col>/<op>` and `/crud/<alias>/batch`.

Bodies become `DbRequest`s in `gateway.dbrequests`, rules run in `gateway.security` (per document for
`create`, per sub-request for a batch), then the worker does the work in one NATS request. `run` and
`run_batch` are that path for every transport (gRPC calls them too).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import dbrequests
from gateway.config import DbConfig, ProjectConfig
from gateway.core import Core
from gateway.http import Request
from gateway.security import Security, redact

EMPTY = b"{}"


class Crud:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security

    async def handle(self, request: Request) -> bytes:
        """`/crud/<alias>/<col>/<kind>`."""
        core, params = self.core, request.params
        project = core.project(params["project"])
        db = dbrequests.database(project, params["alias"])
        body = await request.json(core.settings.max_body_bytes)
        kind = params["kind"]
        result = await self.run(project, db, params["col"], kind, body, request.bearer_token())
        if kind in ("read", "aggr"):
            return orjson.dumps({"result": result})
        return EMPTY

    async def run(self, project: ProjectConfig, db: DbConfig, col: str, kind: str, body: dict[str, Any],
                  token: str | None) -> Any:
        """One CRUD request, whatever the transport (HTTP here, gRPC): validated, authorized, run.
        The result of a read or an aggregation (what never leaves the server taken out); None for a write."""
        claims = self.security.claims(project, token)
        col = dbrequests.collection(col, db)
        req = dbrequests.build(kind, col, body, db.id_field)
        req = await self.security.crud(project, db, col, kind, req, claims, token)
        result = await self.core.db_request(project.id, db.alias, kind, req)
        return redact(col, result) if kind in ("read", "aggr") else None

    async def batch(self, request: Request) -> bytes:
        """`/crud/<alias>/batch`: every sub-request is validated and authorized before any runs, in one transaction."""
        core, params = self.core, request.params
        project = core.project(params["project"])
        db = dbrequests.database(project, params["alias"])
        body: dict[str, Any] = await request.json(core.settings.max_body_bytes)
        await self.run_batch(project, db, body, request.bearer_token())
        return EMPTY

    async def run_batch(self, project: ProjectConfig, db: DbConfig, body: dict[str, Any], token: str | None) -> None:
        """A batch, whatever the transport: every sub-request validated and authorized before any runs."""
        claims = self.security.claims(project, token)
        checked = []
        for kind, req in dbrequests.batch(body, db):
            checked.append((kind, await self.security.crud(project, db, req.col, kind, req, claims, token)))
        await self.core.db_request(project.id, db.alias, "batch", dbrequests.batch_request(checked))
