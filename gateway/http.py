"""Lean ASGI plumbing for every HTTP route: the request (bounded JSON body, bearer token), JSON out, errors.

No framework request objects on the hot paths. Errors are rendered in one place, `{"error": message}`
with the error's status; a 500 never leaks internals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from common.errors import BadRequest, PayloadTooLarge, RequestTimeout, SpaceCloudError

log = logging.getLogger("space_cloud.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def parse_bearer(value: str | bytes | None) -> str | None:
    """`Bearer <jwt>` (or a bare `<jwt>`, as Space Cloud's clients sometimes send) -> the jwt; empty -> None.

    The one parser of the Authorization header, for HTTP, WebSocket and gRPC metadata alike."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text or None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """An empty body is `{}`; anything else must be a JSON object."""
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object")
    return data


class Request:
    """One HTTP request as a route handler sees it: the ASGI triple and the path's named parameters."""

    __slots__ = ("body_timeout", "params", "receive", "scope", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send, params: dict[str, str], *,
                 body_timeout: float = 30.0) -> None:
        self.body_timeout = body_timeout
        """Seconds a client has to send its whole body (a half-open or trickling connection gets 408)."""
        self.scope = scope
        self.receive = receive
        self.send = send
        self.params = params

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    def header(self, name: bytes) -> bytes | None:
        return header(self.scope, name)

    @property
    def client(self) -> str:
        """The peer's address (what back-off and fairness are keyed by); empty when unknown."""
        peer = self.scope.get("client")
        return str(peer[0]) if peer else ""

    def bearer_token(self) -> str | None:
        return parse_bearer(header(self.scope, b"authorization"))

    async def body(self, limit: int) -> bytes:
        try:
            async with asyncio.timeout(self.body_timeout):
                return await self._body(limit)
        except TimeoutError:
            raise RequestTimeout(f"the request body did not arrive within {self.body_timeout:g}s") from None

    async def _body(self, limit: int) -> bytes:
        length = header(self.scope, b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise BadRequest("invalid Content-Length header") from None
            if declared > limit:
                raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def json(self, limit: int) -> dict[str, Any]:
        """The body as a JSON object (empty = `{}`), at most `limit` bytes."""
        return parse_json_object(await self.body(limit))


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    # With a content-length the server sends the body as is: without one, uvicorn switches to chunked
    # encoding and writes a third time (the closing chunk) for every response.
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if headers:
        out += headers
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def error_response(exc: BaseException) -> tuple[int, bytes]:
    """The one place an exception becomes a status and `{"error": ...}`; 500s never leak internals."""
    if isinstance(exc, SpaceCloudError):
        status, message = exc.status, exc.message
    else:
        log.exception("unexpected error", exc_info=exc)
        status, message = 500, "internal server error"
    return status, orjson.dumps({"error": message})


async def send_error(send: Send, exc: BaseException, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    status, body = error_response(exc)
    await send_json(send, status, body, headers)


OriginPolicy = Callable[[Scope, bytes], bool]
"""Whether a request from this `Origin` (not the server's own) may be answered."""


def same_origin(scope: Scope, origin: bytes) -> bool:
    """Is `origin` the server's own (the Host the request was sent to)? Scheme-insensitive by design:
    behind a TLS proxy the server sees http."""
    host = header(scope, b"host")
    if host is None:
        return False
    _, _, rest = origin.partition(b"://")
    return rest.lower() == host.lower()


class CORSMiddleware:
    """Cross-origin requests: answered (with CORS headers, credentials allowed as Space Cloud's clients need)
    only when `policy` allows the origin; otherwise refused with 403 before anything runs, because a
    browser sends "simple" cross-origin requests (a form POST) without asking first."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if origin is None or same_origin(scope, origin):
            await self.app(scope, receive, send)
            return
        if not self.policy(scope, origin):
            await send_json(send, 403, orjson.dumps({"error": "cross-origin request refused: this origin is not "
                                                              "allowed (allowedOrigins)"}))
            return
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method") is not None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *cors,
                        (b"access-control-allow-methods", b"GET, PUT, POST, DELETE, OPTIONS"),
                        (b"access-control-allow-headers", b"Authorization, Content-Type"),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
