"""WebSocket frames written straight to the connection's transport, a loop turn's worth at a time.

Through ASGI every frame is a `websocket.send`: an await, uvicorn's framing through `websockets`,
and one `transport.write` (a system call) each; a fan-out to many sockets also wakes one writer
task per socket. Where the server is uvicorn's websockets-sansio protocol and no extension was
negotiated (no permessage-deflate), a text frame is a small header and the UTF-8 text, so the
gateway frames it itself and writes it to the transport: the frames a socket gets during one
event-loop turn go out in one write, from one callback for all the sockets of that turn
(`Flusher`), with no task switch. The WebSocket protocol is unchanged: each frame is one message.

Anything else (another server, compression, a paused transport) goes the ASGI way, or waits for
the transport to drain, in the socket's writer task (`gateway.ws`).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("space_cloud.ws")
_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked (server to client) text frame."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _FIN_TEXT, 126, n) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, n) + payload


def _sansio_protocol() -> type | None:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:  # pragma: no cover - another uvicorn
        return None
    return WebSocketsSansIOProtocol


_PROTOCOL = _sansio_protocol()


def uvicorn_protocol(asgi_send: Callable[..., Any]) -> Any:
    """The uvicorn (websockets-sansio) protocol object behind its own ASGI `send`, or None."""
    proto = getattr(asgi_send, "__self__", None)
    if _PROTOCOL is None or type(proto) is not _PROTOCOL:
        return None
    if not isinstance(getattr(proto, "writable", None), asyncio.Event) or getattr(proto, "conn", None) is None:
        return None
    return proto


class RawTransport:
    """The transport under one accepted uvicorn WebSocket, for frames the gateway made itself."""

    __slots__ = ("_proto", "_transport", "_writable")

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self._transport = proto.transport
        self._writable: asyncio.Event = proto.writable

    @classmethod
    def of(cls, proto: Any) -> RawTransport | None:
        """For an accepted connection of `uvicorn_protocol`; None when an extension (compression)
        changes how frames look."""
        if proto.conn.extensions or not proto.handshake_complete:
            return None
        return cls(proto)

    @property
    def ready(self) -> bool:
        """Open and not paused: a write goes out now instead of piling up in the transport."""
        p = self._proto
        return self._writable.is_set() and not p.close_sent and not p.disconnected and not self._transport.is_closing()

    @property
    def gone(self) -> bool:
        p = self._proto
        return bool(p.close_sent or p.disconnected or self._transport.is_closing())

    def write(self, frames: list[bytes]) -> None:
        self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    async def drained(self) -> None:
        """Until the transport takes writes again (or the connection is lost)."""
        await self._writable.wait()

    def slim(self) -> None:
        """An idle connection's memory, once accepted: let go of what uvicorn keeps of the handshake and
        never reads again (the request and response with their headers, the scope's headers), and give
        it a receive queue of a few hundred bytes instead of an `asyncio.Queue` (four deques, 3 KB)."""
        p = self._proto
        request = getattr(p, "request", None)
        headers = getattr(request, "headers", None)
        if headers is not None and hasattr(headers, "clear"):
            headers.clear()  # websockets' parser keeps the request object itself for the connection's life
        for name in ("request", "response"):
            if hasattr(p, name):
                setattr(p, name, None)
        scope = getattr(p, "scope", None)
        if isinstance(scope, dict) and isinstance(scope.get("headers"), list):
            scope["headers"] = []  # routing and the request id read them before the accept
        queue = getattr(p, "queue", None)
        if type(queue) is asyncio.Queue:
            lean = ReceiveQueue()
            while not queue.empty():
                lean.put_nowait(queue.get_nowait())
            p.queue = lean


class ReceiveQueue:
    """What uvicorn's protocol needs of its receive queue (`put_nowait`, `get`, `empty`), for one
    consumer (the connection's ASGI `receive`)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class Flushable(Protocol):
    def flush_now(self) -> None: ...


class Flusher:
    """Sockets with frames waiting, flushed together in one callback after the current loop turn."""

    __slots__ = ("_dirty", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[Flushable] = []

    def mark(self, client: Flushable) -> None:
        """Flush `client` soon (the caller marks each client once until it is flushed)."""
        if not self._dirty:
            self._loop.call_soon(self._flush)
        self._dirty.append(client)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for client in dirty:
            try:
                client.flush_now()
            except Exception:  # one broken socket never keeps the others' frames
                log.exception("flushing a websocket failed")


_flushers: dict[asyncio.AbstractEventLoop, Flusher] = {}


def flusher() -> Flusher:
    """The running loop's flusher."""
    loop = asyncio.get_running_loop()
    f = _flushers.get(loop)
    if f is None:
        if len(_flushers) > 8:  # loops of finished tests or runs
            for old in [lp for lp in _flushers if lp.is_closed()]:
                del _flushers[old]
        f = _flushers[loop] = Flusher(loop)
    return f
