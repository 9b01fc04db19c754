"""Routes are data: one table of (methods, path pattern, handler), compiled once, matched in one step.

A pattern is literal segments and `{name}` parameters (one segment each); a final `{name:path}` takes
the rest of the path (for mounted folders). A path is split once; routes are looked up by segment
count, then compared segment by segment. No framework objects: a handler gets a `Request` and returns

- a `dict` or `list` (sent as JSON, 200), or `bytes` (an already encoded JSON body, 200), or
- `None` when it sent the response itself (files, custom status),

and any exception it raises is rendered by `gateway.http.send_error`. WebSocket routes are the same
table entries with `websocket=True`; their handler gets the ASGI triple and the parameters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import NotFound, SpaceCloudError

from .http import Receive, Request, Scope, Send, send_error, send_json

Endpoint = Callable[[Request], Awaitable[Any]]
SocketEndpoint = Callable[[Scope, Receive, Send, dict[str, str]], Awaitable[None]]


class MethodNotAllowed(SpaceCloudError):
    status = 405


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]
    path: str
    handler: Endpoint | SocketEndpoint
    websocket: bool = False
    _segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _rest: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = tuple(self.path.split("/")[1:])
        rest = None
        if parts and parts[-1].endswith(":path}"):
            rest = parts[-1][1:-len(":path}")]
            parts = parts[:-1]
        object.__setattr__(self, "_segments", parts)
        object.__setattr__(self, "_rest", rest)

    @property
    def prefix_length(self) -> int:
        return len(self._segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Named parameters if `parts` (the path split on '/', without the leading '') fits, else None."""
        params: dict[str, str] = {}
        for pattern, value in zip(self._segments, parts, strict=False):
            if pattern[:1] == "{":
                if not value:
                    return None
                params[pattern[1:-1]] = value
            elif pattern != value:
                return None
        if self._rest is not None:
            params[self._rest] = "/" + "/".join(parts[len(self._segments):])
        return params


def route(methods: str, path: str, handler: Endpoint) -> Route:
    """`route("GET HEAD", "/v1/api/{project}/services", handler)`."""
    return Route(tuple(methods.split()), path, handler)


def websocket(path: str, handler: SocketEndpoint) -> Route:
    return Route(("GET",), path, handler, websocket=True)


class Router:
    """Matches a request against the table; exact-length routes first, then `{rest:path}` routes, in table order."""

    def __init__(self, routes: list[Route], *, body_timeout: float = 30.0) -> None:
        self.routes = routes
        self.body_timeout = body_timeout
        self._exact: dict[tuple[bool, int], list[Route]] = {}
        self._prefixed: list[Route] = []
        for r in routes:
            if r._rest is None:
                self._exact.setdefault((r.websocket, len(r._segments)), []).append(r)
            else:
                self._prefixed.append(r)

    def find(self, websocket: bool, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route and its parameters; raises MethodNotAllowed when only the method is wrong."""
        parts = path.split("/")[1:]
        if parts and parts[-1] == "" and len(parts) > 1:
            parts.pop()  # a trailing slash names the same resource
        wrong_method = False
        candidates = self._exact.get((websocket, len(parts)), [])
        for group in (candidates, self._prefixed):
            for r in group:
                if r.websocket != websocket or (r._rest is not None and len(parts) < len(r._segments)):
                    continue
                params = r.match(parts)
                if params is None:
                    continue
                if method not in r.methods:
                    wrong_method = wrong_method or r.prefix_length > 0  # a catch-all does not make a 405
                    continue
                return r, params
        if wrong_method:
            raise MethodNotAllowed("method not allowed")
        return None

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            found = self.find(False, scope["method"], scope["path"])
            if found is None:
                raise NotFound("not found")
            r, params = found
            scope["sc.route"] = r.path  # the template, for metrics (gateway.observability)
            handler: Endpoint = r.handler  # type: ignore[assignment]
            result = await handler(Request(scope, receive, send, params, body_timeout=self.body_timeout))
        except Exception as exc:
            await send_error(send, exc)
            return
        if result is None:
            return
        await send_json(send, 200, result if isinstance(result, bytes) else orjson.dumps(result))

    async def socket(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve a WebSocket route; False when no route matches (the caller refuses the socket)."""
        found = self.find(True, "GET", scope["path"])
        if found is None:
            return False
        r, params = found
        scope["sc.route"] = r.path
        handler: SocketEndpoint = r.handler  # type: ignore[assignment]
        await handler(scope, receive, send, params)
        return True
