"""Mission Control's databases and data views, for admins (`/v1/api/config/projects/<project>/...`).

- `GET  databases`: each alias of `modules.crud` (type, enabled, connected, latency) and its configured
  collections (realtime, typed or schemaless, document count).
- `POST databases/<alias>/test`: try a connection (`{type, conn, database?}`) without saving it.
- `PUT  databases/<alias>`: add or change an alias; its connection is tested first (unless `test: false`),
  then the config is validated, applied and written back. `DELETE databases/<alias>` removes it (its data
  stays in the database).
- `POST data/<alias>/<col>/<kind>`: read (with a `count` of all matches, for paging), create, update, delete,
  with the CRUD API's own bodies, validated by `gateway.dbrequests` and sent through `Core.db_request` as
  the admin (no security rule applies), each write logged with the admin's name. `users` never shows a
  hash (`gateway.security.redact`); the server's own collections (`_sc_*`) cannot be named at all; with
  email sign-in on, the fields of `users` that sign-up owns change only through the users view.
- `GET  data/<alias>/<col>/changes`: a stream (NDJSON, one line per change: `{"type", "id"}`) of the
  collection's change events, so the grid reloads when anyone writes; it ends when the admin session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from nats.aio.msg import Msg

from adapters.registry import create_adapter
from adapters.updates import overlaps, written_paths
from common.errors import BadRequest, Forbidden, NotFound, SpaceCloudError
from gateway import dbrequests, tokens
from gateway.admin import Admin
from gateway.config import DB_TYPES, USER_FIELDS, USERS, ConfigError, DbConfig, ProjectConfig, parse
from gateway.http import Request
from gateway.security import redact
from mesh import subjects
from mesh.connect import settle
from mesh.messages import ChangeEvent, DbRequest

log = logging.getLogger("space_cloud.admin")

STATUS_TIMEOUT = 3.0
"""Seconds the databases view waits for one alias's answer."""
CONNECT_TIMEOUT = 5.0
"""Seconds a connection test may take."""
PAGE_LIMIT = 500
"""Most documents one read of the data view returns (it pages with skip/limit)."""
STREAM_SECONDS = 600.0
"""A change stream ends after this long (the page opens a new one), or when the admin session expires."""
STREAM_BACKLOG = 100
"""Change lines held for a slow reader; past that they are dropped and one `overflow` line says so."""
KEEPALIVE = 15.0
DATA_KINDS = ("read", "create", "update", "delete")
DB_KEYS = ("type", "conn", "database", "enabled")


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _raw_crud(project: dict[str, Any]) -> dict[str, Any]:
    modules = project.setdefault("modules", {})
    if not isinstance(modules, dict):
        raise BadRequest("the project's `modules` is not a mapping: fix it in the config editor")
    crud = modules.get("crud")
    if crud is None:
        crud = modules["crud"] = {}
    if not isinstance(crud, dict):
        raise BadRequest("the project's `modules.crud` is not a mapping: fix it in the config editor")
    return crud


def db_spec(body: dict[str, Any]) -> dict[str, Any]:
    """The config entry of an alias from a request body: `type`, `conn`, optional `database` and `enabled`."""
    kind, conn = body.get("type"), body.get("conn")
    if not isinstance(kind, str) or kind not in DB_TYPES:
        raise BadRequest(f"`type` must be one of {', '.join(sorted(DB_TYPES))}")
    if not isinstance(conn, str) or not conn:
        raise BadRequest("`conn` must be a connection string (or a $VARIABLE)")
    spec: dict[str, Any] = {"type": kind, "conn": conn}
    if body.get("database") is not None:
        if not isinstance(body["database"], str) or not body["database"]:
            raise BadRequest("`database` must be a non-empty string")
        spec["database"] = body["database"]
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise BadRequest("`enabled` must be true or false")
        spec["enabled"] = body["enabled"]
    return spec


async def test_connection(project_id: str, db: DbConfig) -> dict[str, Any]:
    """Connect to `db` from this gateway and close again: `{ok, latencyMs}` or `{ok: false, error}`."""
    start = time.perf_counter()
    try:
        adapter = create_adapter(db.type, db.conn, namespace=project_id, database=db.database)
    except SpaceCloudError as exc:
        return {"ok": False, "error": exc.message}
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await adapter.connect()
    except TimeoutError:
        return {"ok": False, "error": f"no connection within {CONNECT_TIMEOUT:g}s"}
    except SpaceCloudError as exc:
        return {"ok": False, "error": exc.message}
    except Exception as exc:  # a driver's own error: its class and text, never a traceback
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        with contextlib.suppress(Exception):
            await adapter.close()
    return {"ok": True, "latencyMs": _ms(time.perf_counter() - start)}


class AdminData:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.core = admin.core

    # -- databases ----------------------------------------------------------------------------------

    async def _count(self, project: ProjectConfig, alias: str, col: str) -> tuple[int, float]:
        start = time.perf_counter()
        async with asyncio.timeout(STATUS_TIMEOUT):
            count = await self.core.db_request(project.id, alias, "read", DbRequest(col=col, op="count"))
        return int(count), time.perf_counter() - start

    async def _alias(self, project: ProjectConfig, alias: str, raw: Any) -> dict[str, Any]:
        spec = raw if isinstance(raw, dict) else {}
        db = project.crud.get(alias)
        entry: dict[str, Any] = {"alias": alias, "type": db.type if db else str(spec.get("type") or alias),
                                 "enabled": db is not None, "connected": None, "latencyMs": None, "error": None}
        cols: dict[str, Any] = spec["collections"] if isinstance(spec.get("collections"), dict) else {}
        names = [str(n) for n in cols if n != "default"]
        if db is None:
            entry["collections"] = [{"name": n, "count": None} for n in names]
            return entry
        results = await asyncio.gather(*(self._count(project, alias, n) for n in names), return_exceptions=True)
        collections = []
        for name, result in zip(names, results, strict=True):
            conf = db.collections[name]
            item: dict[str, Any] = {"name": name, "realtime": db.realtime_enabled(name),
                                    "typed": bool(conf.fields), "count": None, "rules": sorted(conf.rules)}
            if isinstance(result, tuple):
                item["count"] = result[0]
            else:
                item["error"] = _error_text(result)
            collections.append(item)
        entry["collections"] = collections
        entry["default"] = "default" in cols
        timings = [r[1] for r in results if isinstance(r, tuple)]
        if timings:
            entry["connected"], entry["latencyMs"] = True, _ms(min(timings))
        elif results and isinstance(results[0], BaseException):
            entry["connected"], entry["error"] = False, _error_text(results[0])
        return entry

    async def http_databases(self, request: Request) -> dict[str, Any]:
        self.admin.check(request)
        project = self.admin.project(request)
        raw = _raw_project(self.core.config.raw, project.id)
        crud = ((raw.get("modules") or {}).get("crud") or {}) if isinstance(raw.get("modules"), dict) else {}
        aliases = list(crud.items()) if isinstance(crud, dict) else []
        found = await asyncio.gather(*(self._alias(project, str(alias), spec) for alias, spec in aliases))
        return {"databases": list(found)}

    def _candidate(self, project_id: str, alias: str, spec: dict[str, Any]) -> DbConfig:
        """The alias as the config would read it with `spec` (environment and relative paths resolved)."""
        raw = {"projects": [{**_raw_project(self.core.config.raw, project_id), "id": project_id,
                             "modules": {"crud": {alias: {**spec, "enabled": True}}}}]}
        base = self.core.config.path.parent if self.core.config.path else None
        try:
            parsed = parse(raw, base=base)
        except ConfigError as exc:
            raise BadRequest(f"invalid database: {exc}") from None
        return parsed.projects[project_id].crud[alias]

    async def http_test_database(self, request: Request) -> dict[str, Any]:
        self.admin.check(request)
        project = self.admin.project(request)
        alias = subjects.check_name("alias", request.params["alias"])
        db = self._candidate(project.id, alias, db_spec(await self.admin.body(request)))
        return await test_connection(project.id, db)

    async def http_put_database(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project = self.admin.project(request)
        alias = subjects.check_name("alias", request.params["alias"])
        body = await self.admin.body(request)
        spec = db_spec(body)
        test = body.get("test", True)
        if not isinstance(test, bool):
            raise BadRequest("`test` must be true or false")
        tested: dict[str, Any] = {}
        if test and spec.get("enabled", True):
            tested = await test_connection(project.id, self._candidate(project.id, alias, spec))
            if not tested["ok"]:
                raise BadRequest(f"connection test failed, nothing was saved: {tested['error']}")

        def change(raw: dict[str, Any]) -> None:
            crud = _raw_crud(raw)
            current = crud.get(alias)
            updated = {k: v for k, v in current.items() if k not in DB_KEYS} if isinstance(current, dict) else {}
            crud[alias] = {**spec, **updated}

        self.admin.edit_project(project.id, change)
        log.info("admin %s: saved database %s/%s (%s)", name, project.id, alias, spec["type"])
        return {"saved": alias, **({"latencyMs": tested["latencyMs"]} if tested else {})}

    async def http_delete_database(self, request: Request) -> dict[str, Any]:
        name = self.admin.check(request)
        project = self.admin.project(request)
        alias = request.params["alias"]

        def change(raw: dict[str, Any]) -> None:
            crud = _raw_crud(raw)
            if alias not in crud:
                raise NotFound(f"database {alias!r} is not in the config of project {project.id!r}")
            del crud[alias]

        self.admin.edit_project(project.id, change)
        log.info("admin %s: removed database %s/%s from the config", name, project.id, alias)
        return {}

    # -- documents -----------------------------------------------------------------------------------

    def _target(self, request: Request) -> tuple[ProjectConfig, DbConfig, str]:
        project = self.admin.project(request)
        db = dbrequests.database(project, request.params["alias"])
        return project, db, dbrequests.collection(request.params["col"], db)

    async def http_data(self, request: Request) -> Any:
        name = self.admin.check(request)
        project, db, col = self._target(request)
        kind = request.params["kind"]
        if kind not in DATA_KINDS:
            raise NotFound(f"unknown operation {kind!r}: use {', '.join(DATA_KINDS)}")
        body = await self.admin.body(request)
        if kind == "read":
            return await self._read(project, db, col, body)
        req = dbrequests.build(kind, col, body, db.id_field)
        _users_guard(project, col, kind, req)
        await self.core.db_request(project.id, db.alias, kind, req)
        what = f"{len(req.doc)} documents" if isinstance(req.doc, list) else req.op
        log.info("admin %s: %s (%s) on %s/%s/%s", name, kind, what, project.id, db.alias, col)
        return {}

    async def _read(self, project: ProjectConfig, db: DbConfig, col: str, body: dict[str, Any]) -> dict[str, Any]:
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise BadRequest("`options` must be an object")
        limit = options.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT:
            raise BadRequest(f"`options.limit` must be an integer from 1 to {PAGE_LIMIT}")
        req = dbrequests.build("read", col, {**body, "op": "all", "options": {**options, "limit": limit}}, db.id_field)
        if req.options.get("distinct") is not None:
            raise BadRequest("the data view reads documents: `distinct` is not supported here")
        count = DbRequest(col=col, op="count", find=req.find)
        docs, total = await asyncio.gather(self.core.db_request(project.id, db.alias, "read", req),
                                           self.core.db_request(project.id, db.alias, "read", count))
        return {"result": redact(col, docs), "count": total, "idField": db.id_field}

    # -- the change stream ---------------------------------------------------------------------------

    async def http_changes(self, request: Request) -> None:
        self.admin.check(request)
        project, db, col = self._target(request)
        token = request.bearer_token()
        ends = time.monotonic() + STREAM_SECONDS
        if not self.core.dev and token:
            exp = tokens.verify_admin(token, secret=self.admin.security.admin_secret).get("exp")
            if isinstance(exp, int | float):
                ends = min(ends, time.monotonic() + (exp - time.time()))
        await ChangeStream(self.core.nc, subjects.changes(project.id, db.alias, col), ends).serve(request)


class ChangeStream:
    """One admin's view of a collection's change events, as NDJSON lines with a bounded backlog."""

    def __init__(self, nc: Any, subject: str, ends: float) -> None:
        self.nc = nc
        self.subject = subject
        self.ends = ends
        self.lines: list[bytes] = []
        self.dropped = 0
        self.wake = asyncio.Event()

    async def _on_message(self, msg: Msg) -> None:
        try:
            change = ChangeEvent.decode(msg.data)
        except BadRequest:
            return
        if len(self.lines) >= STREAM_BACKLOG:
            self.dropped += 1
        else:
            self.lines.append(orjson.dumps({"type": change.type, "id": change.id}) + b"\n")
        self.wake.set()

    async def serve(self, request: Request) -> None:
        sub = await self.nc.subscribe(self.subject, cb=self._on_message)
        gone = asyncio.create_task(_disconnected(request))
        try:
            await settle(self.nc)  # subscribed before the stream says it is open
            send = request.send
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/x-ndjson"), (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff")]})
            await send({"type": "http.response.body", "body": b'{"type":"ready"}\n', "more_body": True})
            while not gone.done():
                left = self.ends - time.monotonic()
                if left <= 0:
                    break
                waiter = asyncio.create_task(self.wake.wait())
                await asyncio.wait({gone, waiter}, timeout=min(left, KEEPALIVE), return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                self.wake.clear()
                out, self.lines = self.lines, []
                if self.dropped:
                    out.append(orjson.dumps({"type": "overflow", "dropped": self.dropped}) + b"\n")
                    self.dropped = 0
                await send({"type": "http.response.body", "body": b"".join(out) or b"\n", "more_body": True})
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b'{"type":"end"}\n'})
        except OSError:
            pass  # the client went away mid-write
        finally:
            gone.cancel()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _raw_project(raw: dict[str, Any], project_id: str) -> dict[str, Any]:
    projects = raw.get("projects")
    if isinstance(projects, dict):
        found = projects.get(project_id)
        return dict(found) if isinstance(found, dict) else {}
    for p in projects if isinstance(projects, list) else []:
        if isinstance(p, dict) and p.get("id") == project_id:
            return dict(p)
    return {}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SpaceCloudError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return f"no answer within {STATUS_TIMEOUT:g}s"
    return type(exc).__name__


def _users_guard(project: ProjectConfig, col: str, kind: str, req: DbRequest) -> None:
    """With email sign-in on, `users` holds accounts: they are created by sign-up, deleted (with their
    credentials) and given roles by the users view, and their email changes through edit_profile."""
    if col != USERS or not project.auth.email_enabled:
        return
    if kind in ("create", "delete"):
        raise Forbidden(f"users are {'created by sign-up' if kind == 'create' else 'deleted in the users view'} "
                        "(their credentials go with them), not in the data view")
    for path in written_paths(req.update or {}):
        for field in USER_FIELDS:
            if overlaps(path, field):
                raise Forbidden(f"`{field}` of a user changes in the users view (or through edit_profile), "
                                "not in the data view")

