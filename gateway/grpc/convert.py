"""gRPC messages <-> what the features take and give: JSON `bytes` fields, `Meta`, read options, `Response`.

Requests become the same bodies HTTP clients send (so `gateway.dbrequests` validates both the same
way); results and errors become a `Response` with the HTTP status. Empty JSON fields are absent
(`{}` for an object), as proto3 cannot tell an empty field from a missing one.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from common.errors import BadRequest, SpaceCloudError
from gateway.grpc.stubs import pb
from gateway.http import parse_bearer

log = logging.getLogger("space_cloud.grpc")

ABSENT: Any = object()


def json_value(raw: bytes, field: str, *, default: Any = None) -> Any:
    """A JSON `bytes` field; empty is `default`; malformed is a 400."""
    if not raw.strip():
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"`{field}` must be JSON text: {exc}") from None


def json_object(raw: bytes, field: str) -> dict[str, Any]:
    """A JSON object `bytes` field (`where`, `find`, `options`...); empty is `{}`."""
    value = json_value(raw, field, default={})
    if not isinstance(value, dict):
        raise BadRequest(f"`{field}` must be a JSON object")
    return value


def token(raw: str) -> str | None:
    """A token field (`Meta.token`, `token`): the raw JWT Space Cloud's clients send, or `Bearer <jwt>`."""
    return parse_bearer(raw)


def body(op: str, **fields: Any) -> dict[str, Any]:
    """A CRUD body as HTTP clients send it: `op` only when given, fields that are not ABSENT."""
    out = {k: v for k, v in fields.items() if v is not ABSENT}
    if op:
        out["op"] = op
    return out


def read_options(request: pb.ReadRequest) -> dict[str, Any]:
    """`ReadOptions` as the HTTP `options` object: zero skip/limit and empty maps/strings are not given."""
    if not request.HasField("options"):
        return {}
    o = request.options
    out: dict[str, Any] = {}
    if o.select:
        out["select"] = dict(o.select)
    if o.sort:
        out["sort"] = dict(o.sort)
    if o.skip:
        out["skip"] = o.skip
    if o.limit:
        out["limit"] = o.limit
    if o.distinct:
        out["distinct"] = o.distinct
    return out


def batch_body(request: pb.BatchRequest) -> dict[str, Any]:
    """`BatchRequest.batchrequest` as the HTTP batch body `{"reqs": [...]}`."""
    reqs = []
    for i, r in enumerate(request.batchrequest):
        where = f"batchrequest[{i}]"
        reqs.append(body(
            r.operation, type=r.type, col=r.col,
            doc=json_value(r.document, f"{where}.document") if r.document.strip() else ABSENT,
            find=json_object(r.find, f"{where}.find") if r.find.strip() else ABSENT,
            update=json_object(r.update, f"{where}.update") if r.update.strip() else ABSENT,
        ))
    return {"reqs": reqs}


def status_of(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message of an error, as `gateway.http` renders them: a 500 never leaks internals."""
    if isinstance(exc, SpaceCloudError):
        return exc.status, exc.message
    log.exception("unexpected error in a gRPC handler", exc_info=exc)
    return 500, "internal server error"


def ok(result: Any = ABSENT) -> pb.Response:
    """200, with the result as JSON (writes have none, as in Space Cloud)."""
    if result is ABSENT:
        return pb.Response(status=200)
    return pb.Response(status=200, result=orjson.dumps(result))


def failure(exc: BaseException) -> pb.Response:
    status, message = status_of(exc)
    return pb.Response(status=status, error=message)


def peer_host(peer: str) -> str:
    """The client's address from grpc's peer string (`ipv4:1.2.3.4:5678`, `ipv6:[::1]:5678`)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6") or not rest:
        return ""
    host = rest.rsplit(":", 1)[0]
    return host.strip("[]")
