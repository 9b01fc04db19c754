"""What every HTTP request gets on its way in and out (pure ASGI): a request id and its metrics.

The id is the client's `X-Request-Id` when it is sane (`mesh.context.sane_request_id`), else a new
one; it is put in `mesh.context` (so every log line about the request and every NATS request made for
it carries it) and sent back in the `X-Request-Id` response header. Requests, their status and
latency are counted per route template (`scope["sc.route"]`, set by the router; `unmatched`
otherwise). WebSocket connections get an id for their logs too.
"""

from __future__ import annotations

import time

from gateway.http import ASGIApp, Message, Receive, Scope, Send, header
from gateway.metrics import GatewayMetrics
from mesh.context import REQUEST_ID, new_request_id, sane_request_id

REQUEST_ID_HEADER = b"x-request-id"
ROUTE_KEY = "sc.route"
UNMATCHED = "unmatched"


class Observed:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                REQUEST_ID.set(sane_request_id(header(scope, REQUEST_ID_HEADER)) or new_request_id())
            await self.app(scope, receive, send)
            return
        rid = sane_request_id(header(scope, REQUEST_ID_HEADER)) or new_request_id()
        REQUEST_ID.set(rid)
        echo = (REQUEST_ID_HEADER, rid.encode())
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.request(scope.get(ROUTE_KEY, UNMATCHED), scope["method"], status,
                                 time.perf_counter() - start)
