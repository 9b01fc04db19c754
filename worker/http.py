"""The db worker's own small HTTP port (`space-cloud worker --metrics-port`): `GET /metrics` for
Prometheus and `GET /healthz` for container health checks. Nothing else, no request body."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import orjson

from mesh.metrics import CONTENT_TYPE, Registry

Health = Callable[[], tuple[int, dict[str, object]]]


class StatusServer:
    def __init__(self, registry: Registry, health: Health, *, host: str, port: int) -> None:
        self._registry = registry
        self._health = health
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path = path.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                status, kind, body = 405, "application/json", b'{"error":"method not allowed"}'
            elif path == "/metrics":
                status, kind, body = 200, CONTENT_TYPE, self._registry.render()
            elif path == "/healthz":
                code, report = self._health()
                status, kind, body = code, "application/json", orjson.dumps(report)
            else:
                status, kind, body = 404, "application/json", b'{"error":"not found"}'
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
