"""Lean ASGI plumbing for the hot routes: read a bounded JSON body, send JSON, render errors, CORS.

The hot paths (function calls, CRUD) run here without framework request objects; everything
else goes to the FastAPI app. Errors are rendered in one place: `{"error": message}`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from common.errors import BadRequest, PayloadTooLarge, SpaceCloudError

log = logging.getLogger("space_cloud.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def bearer_token(scope: Scope) -> str | None:
    """`Authorization: Bearer <jwt>` → the jwt; a missing header → None."""
    value = header(scope, b"authorization")
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text or None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    length = header(scope, b"content-length")
    if length is not None:
        try:
            if int(length) > limit:
                raise PayloadTooLarge(f"request body is larger than the limit of {limit} bytes")
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
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


async def send_json(send: Send, status: int, body: bytes) -> None:
    # With a content-length the server sends the body as is: without one, uvicorn switches to chunked
    # encoding and writes a third time (the closing chunk) for every response.
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def error_response(exc: BaseException) -> tuple[int, bytes]:
    """The one place an exception becomes a status and `{"error": ...}`; 500s never leak internals."""
    if isinstance(exc, SpaceCloudError):
        status, message = exc.status, exc.message
    else:
        log.exception("unexpected error", exc_info=exc)
        status, message = 500, "internal server error"
    return status, orjson.dumps({"error": message})


async def send_error(send: Send, exc: BaseException) -> None:
    status, body = error_response(exc)
    await send_json(send, status, body)


class CORSMiddleware:
    """Space Cloud's CORS: every origin, credentials allowed, GET/PUT/POST/DELETE, Authorization + Content-Type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = header(scope, b"origin")
        if origin is None:
            await self.app(scope, receive, send)
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
