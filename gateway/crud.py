"""Space Cloud's CRUD API over HTTP: `POST /v1/api/<project>/crud/<alias>/<col>/<op>` and `/crud/<alias>/batch`.

Bodies become `DbRequest`s in `gateway.dbrequests`, rules run in `gateway.security` (per document for
`create`, per sub-request for a batch), then the worker does the work in one NATS request.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import dbrequests
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
        token = request.bearer_token()
        claims = self.security.claims(project, token)
        kind = params["kind"]
        col = dbrequests.collection(params["col"])
        req = dbrequests.build(kind, col, body, db.id_field)
        req = await self.security.crud(project, db, col, kind, req, claims, token)
        result = await core.db_request(project.id, db.alias, kind, req)
        if kind in ("read", "aggr"):
            return orjson.dumps({"result": redact(col, result)})
        return EMPTY

    async def batch(self, request: Request) -> bytes:
        """`/crud/<alias>/batch`: every sub-request is validated and authorized before any runs, in one transaction."""
        core, params = self.core, request.params
        project = core.project(params["project"])
        db = dbrequests.database(project, params["alias"])
        body: dict[str, Any] = await request.json(core.settings.max_body_bytes)
        token = request.bearer_token()
        claims = self.security.claims(project, token)
        checked = []
        for kind, req in dbrequests.batch(body, db.id_field):
            checked.append((kind, await self.security.crud(project, db, req.col, kind, req, claims, token)))
        await core.db_request(project.id, db.alias, "batch", dbrequests.batch_request(checked))
        return EMPTY
