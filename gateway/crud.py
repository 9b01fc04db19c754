"""Space Cloud's CRUD API: `POST /v1/api/<project>/crud/<alias>/<col>/<op>` and `/crud/<alias>/batch`.

Bodies are checked here (shape, operators, names) so a bad request is a 400 before any rule
runs or the worker is asked; rules run per request (per document for `create` with `op: all`,
per sub-request for a batch); then the worker does the work in one NATS request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from adapters.names import check_collection
from adapters.query import validate_find, validate_options, validate_pipeline
from adapters.updates import validate_update
from common.errors import BadRequest, NotFound, SpaceCloudError
from gateway.config import ProjectConfig
from gateway.http import Receive, Scope, Send, bearer_token, parse_json_object, read_body, send_json
from gateway.security import authorize_crud, claims_for

if TYPE_CHECKING:
    from gateway.server import Gateway

OPS = {
    "create": ("one", "all"),
    "read": ("one", "all", "count", "distinct"),
    "update": ("one", "all", "upsert"),
    "delete": ("one", "all"),
    "aggr": ("one", "all"),
}
WRITE_TYPES = ("create", "update", "delete")
READ_OPTIONS = ("select", "sort", "skip", "limit", "distinct")
EMPTY = b"{}"


def _object(body: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"`{key}` is required")
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"`{key}` must be an object")
    return value


def _op(kind: str, body: dict[str, Any]) -> str:
    op = body.get("op")
    if op is None:
        if kind == "create":
            return "all" if isinstance(body.get("doc"), list) else "one"
        return "all"
    if op not in OPS[kind]:
        raise BadRequest(f"invalid op {op!r} for {kind}: use one of {', '.join(OPS[kind])}")
    return str(op)


def normalize(kind: str, body: dict[str, Any], id_field: str) -> dict[str, Any]:
    """The worker request for one CRUD operation, validated. Raises `BadRequest`."""
    op = _op(kind, body)
    try:
        if kind == "create":
            doc = body.get("doc")
            if op == "one" and not isinstance(doc, dict):
                raise BadRequest("`doc` must be an object for op one")
            if op == "all" and not (isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc)):
                raise BadRequest("`doc` must be a non-empty list of objects for op all")
            return {"op": op, "doc": doc}
        # Validators normalise (implicit equality becomes $eq); rules must see what the client sent.
        if kind == "aggr":
            validate_pipeline(body.get("pipe"))
            return {"op": op, "pipe": body["pipe"]}
        find = _object(body, "find")
        validate_find(find)
        if kind == "read":
            options = {k: v for k, v in _object(body, "options").items() if k in READ_OPTIONS}
            validate_options(options.get("select"), options.get("sort"), options.get("skip"), options.get("limit"),
                             options.get("distinct"), id_field=id_field)
            if op == "distinct" and not isinstance(options.get("distinct"), str):
                raise BadRequest("op distinct needs `options.distinct`, the field to list")
            return {"op": op, "find": find, "options": options}
        if kind == "update":
            update = _object(body, "update", required=True)
            validate_update(update, id_field=id_field)
            if not update:
                raise BadRequest("`update` must set something")
            return {"op": op, "find": find, "update": update}
        return {"op": op, "find": find}
    except SpaceCloudError as exc:
        raise BadRequest(exc.message) from None


def _rule_args(kind: str, req: dict[str, Any], claims: dict[str, Any] | None, token: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"op": req["op"], "auth": claims, "token": token}
    if kind == "aggr":
        args["pipeline"] = req["pipe"]
    else:
        for key in ("find", "update"):
            if key in req:
                args[key] = req[key]
    return args


async def authorize_request(
    gw: Gateway, project: ProjectConfig, alias: str, col: str, kind: str, req: dict[str, Any],
    claims: dict[str, Any] | None, token: str | None,
) -> dict[str, Any]:
    """Run the rules for one request; returns the request as the rules left it (force/remove)."""
    if kind == "create":
        docs = req["doc"] if req["op"] == "all" else [req["doc"]]
        checked = []
        for doc in docs:
            args = {"op": req["op"], "auth": claims, "token": token, "doc": doc}
            await authorize_crud(gw, project, alias, col, "create", args)
            checked.append(args["doc"])
        return {**req, "doc": checked if req["op"] == "all" else checked[0]}
    args = _rule_args(kind, req, claims, token)
    await authorize_crud(gw, project, alias, col, kind, args)
    out = dict(req)
    for key in ("find", "update"):
        if key in req:
            out[key] = args.get(key) or {}
    if kind == "aggr":
        out["pipe"] = args.get("pipeline") or []
    return out


def database(project: ProjectConfig, alias: str) -> str:
    db = project.crud.get(alias)
    if db is None:
        raise NotFound(f"database {alias!r} is not configured for project {project.id!r}")
    return "_id" if db.type == "mongo" else "id"


async def handle_crud(gw: Gateway, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
    """`parts` = path split on '/': ['', 'v1', 'api', project, 'crud', alias, col, op] or [..., alias, 'batch']."""
    project = gw.project(parts[3])
    alias = parts[5]
    id_field = database(project, alias)
    body = parse_json_object(await read_body(scope, receive, gw.config.max_body_bytes))
    token = bearer_token(scope)
    claims = claims_for(project, token)
    if len(parts) == 7:
        if parts[6] != "batch":
            raise NotFound(f"no route {scope['path']}")
        await _batch(gw, project, alias, id_field, body, claims, token)
        await send_json(send, 200, EMPTY)
        return
    col, kind = parts[6], parts[7]
    if kind not in OPS:
        raise NotFound(f"unknown CRUD operation {kind!r}: use create, read, update, delete, aggr or batch")
    try:
        check_collection(col)
    except SpaceCloudError as exc:
        raise BadRequest(exc.message) from None
    req = normalize(kind, body, id_field)
    req = await authorize_request(gw, project, alias, col, kind, req, claims, token)
    result = await gw.db_request(project.id, alias, kind, {"col": col, **req})
    if kind in ("read", "aggr"):
        await send_json(send, 200, orjson.dumps({"result": result}))
    else:
        await send_json(send, 200, EMPTY)


async def _batch(
    gw: Gateway, project: ProjectConfig, alias: str, id_field: str, body: dict[str, Any],
    claims: dict[str, Any] | None, token: str | None,
) -> None:
    reqs = body.get("reqs")
    if not isinstance(reqs, list) or not reqs:
        raise BadRequest("`reqs` must be a non-empty list")
    out = []
    for i, sub in enumerate(reqs):
        if not isinstance(sub, dict):
            raise BadRequest(f"reqs[{i}] must be an object")
        kind, col = sub.get("type"), sub.get("col")
        if kind not in WRITE_TYPES:
            raise BadRequest(f"reqs[{i}].type must be create, update or delete")
        try:
            check_collection(col)
        except SpaceCloudError as exc:
            raise BadRequest(f"reqs[{i}]: {exc.message}") from None
        try:
            req = normalize(str(kind), sub, id_field)
        except BadRequest as exc:
            raise BadRequest(f"reqs[{i}]: {exc.message}") from None
        out.append((str(kind), str(col), req))
    checked = []
    for kind, col, req in out:  # every request is authorized before any runs
        req = await authorize_request(gw, project, alias, col, kind, req, claims, token)
        checked.append({"type": kind, "col": col, **req})
    await gw.db_request(project.id, alias, "batch", {"reqs": checked})
