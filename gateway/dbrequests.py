"""Client CRUD bodies (Space Cloud's shapes) -> validated `DbRequest`s, the same for every transport.

Bodies are checked here (shape, operators, names, options) so a bad request is a 400 before any rule
runs or the worker is asked. HTTP CRUD, batches, live-query subscriptions and gRPC all build their
requests with these functions. Validators normalise internally; the request keeps what the client
sent, because rules must see that.
"""

from __future__ import annotations

from typing import Any

from adapters.names import check_collection, collection_key
from adapters.query import validate_find, validate_options, validate_pipeline
from adapters.updates import validate_update
from common.errors import BadRequest, Forbidden, NotFound
from gateway.config import RESERVED_PREFIX, DbConfig, ProjectConfig
from mesh.messages import DbRequest

OPS = {
    "create": ("one", "all"),
    "read": ("one", "all", "count", "distinct"),
    "update": ("one", "all", "upsert"),
    "delete": ("one", "all"),
    "aggr": ("one", "all"),
}
WRITE_TYPES = ("create", "update", "delete")
READ_OPTIONS = ("select", "sort", "skip", "limit", "distinct")


def database(project: ProjectConfig, alias: str) -> DbConfig:
    db = project.crud.get(alias)
    if db is None:
        raise NotFound(f"database {alias!r} is not configured for project {project.id!r}")
    return db


def collection(col: Any, db: DbConfig | None = None) -> str:
    """A valid collection name a client may use (400 otherwise; 403 for the server's own collections).

    With `db`, the name as that database compares it (`collection_key`: lower-case on SQLite and MySQL),
    so rules, change subjects and live queries agree with the table the database will use."""
    check_collection(col)
    name = str(col)
    if name.lower().startswith(RESERVED_PREFIX):
        raise Forbidden(f"collection {name!r} is reserved for the server (names starting with {RESERVED_PREFIX})")
    return collection_key(db.type, name) if db is not None else name


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


def build(kind: str, col: str, body: dict[str, Any], id_field: str) -> DbRequest:
    """The worker request for one CRUD operation on `col`, validated. Raises `BadRequest`."""
    if kind not in OPS:
        raise NotFound(f"unknown CRUD operation {kind!r}: use create, read, update, delete, aggr or batch")
    op = _op(kind, body)
    if kind == "create":
        doc = body.get("doc")
        if op == "one" and not isinstance(doc, dict):
            raise BadRequest("`doc` must be an object for op one")
        if op == "all" and not (isinstance(doc, list) and doc and all(isinstance(d, dict) for d in doc)):
            raise BadRequest("`doc` must be a non-empty list of objects for op all")
        return DbRequest(col=col, op=op, doc=doc)
    if kind == "aggr":
        pipe = body.get("pipe")
        validate_pipeline(pipe, id_field=id_field)
        assert isinstance(pipe, list)
        return DbRequest(col=col, op=op, pipe=pipe)
    find = _object(body, "find")
    validate_find(find)
    if kind == "read":
        return DbRequest(col=col, op=op, find=find, options=read_options(op, _object(body, "options"), id_field))
    if kind == "update":
        update = _object(body, "update", required=True)
        validate_update(update, id_field=id_field)
        if not update:
            raise BadRequest("`update` must set something")
        return DbRequest(col=col, op=op, find=find, update=update)
    return DbRequest(col=col, op=op, find=find)


def read_options(op: str, raw: dict[str, Any], id_field: str) -> dict[str, Any]:
    options = {k: v for k, v in raw.items() if k in READ_OPTIONS}
    validate_options(options.get("select"), options.get("sort"), options.get("skip"), options.get("limit"),
                     options.get("distinct"), id_field=id_field)
    if op == "distinct" and not isinstance(options.get("distinct"), str):
        raise BadRequest("op distinct needs `options.distinct`, the field to list")
    return options


def batch(body: dict[str, Any], db: DbConfig) -> list[tuple[str, DbRequest]]:
    """A batch's sub-requests as (type, request), every one validated before any runs."""
    reqs = body.get("reqs")
    if not isinstance(reqs, list) or not reqs:
        raise BadRequest("`reqs` must be a non-empty list")
    out = []
    for i, sub in enumerate(reqs):
        if not isinstance(sub, dict):
            raise BadRequest(f"reqs[{i}] must be an object")
        kind = sub.get("type")
        if kind not in WRITE_TYPES:
            raise BadRequest(f"reqs[{i}].type must be create, update or delete")
        try:
            out.append((str(kind), build(str(kind), collection(sub.get("col"), db), sub, db.id_field)))
        except BadRequest as exc:
            raise BadRequest(f"reqs[{i}]: {exc.message}") from None
    return out


def batch_request(checked: list[tuple[str, DbRequest]]) -> DbRequest:
    """One worker request for authorized sub-requests (`reqs` entries are `adapters.base.WriteRequest` fields)."""
    reqs = []
    for kind, req in checked:
        entry: dict[str, Any] = {"type": kind, "col": req.col, "op": req.op}
        if kind == "create":
            entry["doc"] = req.doc
        else:
            entry["find"] = req.find
            if req.update is not None:
                entry["update"] = req.update
        reqs.append(entry)
    return DbRequest(op="all", reqs=reqs)
