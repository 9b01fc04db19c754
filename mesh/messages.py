"""Typed wire messages: what crosses NATS, each built and parsed here and nowhere else.

Project, alias, service and function travel in the subject (`mesh.subjects`), never again in a body.
Bodies are msgpack (`mesh.codec`). A body that does not parse is a `BadRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from common.errors import BadRequest

from .codec import pack, unpack

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"
"""An error reply (nats micro): status code and message in headers, rebuilt by `common.errors.from_code`."""

TIMEOUT_HEADER = "Sc-Timeout"
"""On a request: how long the caller waits for the reply, in whole milliseconds (at least 1), counted from
when it sent the request. A budget, not a wall-clock instant: receivers add it to their own clock on
arrival, so clocks need not agree. Absent: the caller did not say (the receiver applies its default)."""
REQUEST_ID_HEADER = "Sc-Request-Id"
"""On a request (and on error replies): the id of the client request it serves, for the logs."""


def encode_timeout(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def decode_timeout(value: str | None) -> float | None:
    """The budget in seconds; None when absent or not a positive integer (the header is then ignored)."""
    if not value or not value.isdigit():
        return None
    ms = int(value)
    return ms / 1000.0 if ms > 0 else None


def request_headers(timeout: float, request_id: str | None) -> dict[str, str]:
    """The headers every request carries: its budget and, when known, the request id."""
    if request_id is None:
        return {TIMEOUT_HEADER: encode_timeout(timeout)}
    return {TIMEOUT_HEADER: encode_timeout(timeout), REQUEST_ID_HEADER: request_id}

Auth = dict[str, Any] | None
ChangeType = Literal["insert", "update", "delete"]
CHANGE_TYPES = ("insert", "update", "delete")


def _body(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = unpack(data)
    except Exception:
        raise BadRequest(f"malformed {what}: not msgpack") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(f"malformed {what}: not a map")
    return body


def _optional_dict(body: dict[str, Any], key: str, what: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise BadRequest(f"malformed {what}: `{key}` must be a map")
    return value


@dataclass(slots=True)
class Call:
    """A function call (`sc.<project>.fn.<service>.<func>`): the caller's params and JWT claims."""

    params: Any = None
    auth: Auth = None

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "auth": self.auth}

    def encode(self) -> bytes:
        return pack(self.to_dict())

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Call:
        return cls(params=body.get("params"), auth=_optional_dict(body, "auth", "call envelope"))

    @classmethod
    def decode(cls, data: bytes) -> Call:
        return cls.from_dict(_body(data, "call envelope"))


@dataclass(slots=True)
class DbRequest:
    """A request to the db workers (`sc.<project>.db.<alias>.<kind>`, kind = read|create|update|delete|aggr|batch).

    `op` is the CRUD op (one/all/count/distinct/upsert); `reqs` holds a batch's sub-requests as maps
    with `type` and `col` (see `adapters.base.WriteRequest`).
    """

    col: str = ""
    op: str = "all"
    find: dict[str, Any] = field(default_factory=dict)
    doc: Any = None
    update: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    pipe: list[Any] = field(default_factory=list)
    reqs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"col": self.col, "op": self.op}
        if self.find:
            out["find"] = self.find
        if self.doc is not None:
            out["doc"] = self.doc
        if self.update is not None:
            out["update"] = self.update
        if self.options:
            out["options"] = self.options
        if self.pipe:
            out["pipe"] = self.pipe
        if self.reqs:
            out["reqs"] = self.reqs
        return out

    def encode(self) -> bytes:
        return pack(self.to_dict())

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> DbRequest:
        what = "db request"
        col, op = body.get("col", ""), body.get("op", "all")
        if not isinstance(col, str) or not isinstance(op, str):
            raise BadRequest(f"malformed {what}: `col` and `op` must be strings")
        pipe, reqs = body.get("pipe") or [], body.get("reqs") or []
        if not isinstance(pipe, list) or not isinstance(reqs, list) or not all(isinstance(r, dict) for r in reqs):
            raise BadRequest(f"malformed {what}: `pipe` and `reqs` must be lists")
        return cls(
            col=col, op=op, find=_optional_dict(body, "find", what) or {}, doc=body.get("doc"),
            update=_optional_dict(body, "update", what), options=_optional_dict(body, "options", what) or {},
            pipe=pipe, reqs=reqs,
        )

    @classmethod
    def decode(cls, data: bytes) -> DbRequest:
        return cls.from_dict(_body(data, "db request"))


@dataclass(slots=True)
class ChangeEvent:
    """One document changed by a committed write (`sc.<project>.changes.<alias>.<col>`).

    `doc` is the whole document after the write (None for deletes); `version` grows with every
    write to the same id; `time` is the clock of whoever captured the change, in ms. `before` is the
    document before the write where the database can tell (None for inserts, and where it cannot).
    """

    type: ChangeType
    id: str | int
    doc: dict[str, Any] | None
    version: int
    time: int
    before: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.type, "id": self.id, "doc": self.doc, "version": self.version, "time": self.time}
        if self.before is not None:
            out["before"] = self.before
        return out

    def encode(self) -> bytes:
        return pack(self.to_dict())

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> ChangeEvent:
        kind, did, doc = body.get("type"), body.get("id"), body.get("doc")
        if kind not in CHANGE_TYPES:
            raise BadRequest(f"malformed change event: type {kind!r}")
        if isinstance(did, bool) or not isinstance(did, str | int):
            raise BadRequest("malformed change event: `id` must be a string or an integer")
        if kind == "delete":
            doc = None
        elif not isinstance(doc, dict):
            raise BadRequest("malformed change event: `doc` must be a map")
        version, time = body.get("version") or 0, body.get("time") or 0
        if not isinstance(version, int) or not isinstance(time, int):
            raise BadRequest("malformed change event: `version` and `time` must be integers")
        before = _optional_dict(body, "before", "change event") if kind != "insert" else None
        return cls(type=kind, id=did, doc=doc, version=version, time=time, before=before)

    @classmethod
    def decode(cls, data: bytes) -> ChangeEvent:
        return cls.from_dict(_body(data, "change event"))
