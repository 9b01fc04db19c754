"""The JSON WebSocket (`/v1/api/<project>/socket/json` and the legacy `/v1/api/socket/json`).

Frames are `{"id", "type", "data"}`; replies echo the request's id and type, pushes carry `id: ""`.
Each socket has a bounded send queue: a consumer too slow to keep up is closed with code 4008
and never slows anyone else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.errors import BadRequest, SpaceCloudError

from .http import Send
from .metrics import FRAMES
from .peer import FeedFrame

log = logging.getLogger("space_cloud.ws")

SLOW_CONSUMER = 4008
"""Close code for a socket whose send queue overflowed."""

Handler = Callable[["Client", str, dict[str, Any]], Awaitable[None]]
CloseHook = Callable[["Client"], Awaitable[None]]


class Client:
    """One WebSocket (a `gateway.peer.Peer`)."""

    kind = "websocket"

    def __init__(self, ws: WebSocket, asgi_send: Send, *, project: str | None, max_queue: int,
                 max_in_flight: int = 64) -> None:
        self.ws = ws
        self._max_in_flight = max_in_flight
        self._asgi_send = asgi_send
        self.id = uuid.uuid4().hex
        self.project = project
        self._queue: collections.deque[str] = collections.deque()
        self._max_queue = max_queue
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._overflow = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.closed = False

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame; never blocks. Overflow closes the socket (slow consumer)."""
        self.send_text(orjson.dumps(frame).decode())

    def send_text(self, text: str) -> None:
        """Queue an already serialised frame (fan-out serialises once for many sockets)."""
        if self.closed or self._closing is not None:
            FRAMES.dropped += 1
            return
        if len(self._queue) >= self._max_queue:
            FRAMES.dropped += len(self._queue) + 1
            FRAMES.slow_closes += 1
            self._queue.clear()
            self._closing = (SLOW_CONSUMER, "slow consumer: send queue overflowed")
            self._overflow.set()
        else:
            FRAMES.queued += 1
            self._queue.append(text)
        self._wake.set()

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        """A live-query change: the frame's text is made once for all the sockets of that query."""
        self.send_text(frame.ws_text(qid))

    async def writable(self) -> None:
        """Wait until the send queue is at most half full, or the socket is going away."""
        while len(self._queue) > self._max_queue // 2 and not self.closed and self._closing is None:
            self._room.clear()
            with contextlib.suppress(TimeoutError):  # look at `closed` again now and then
                await asyncio.wait_for(self._room.wait(), 0.5)

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close the socket."""
        if self._closing is None:
            self._closing = (code, reason)
            self._wake.set()

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        self.send({"id": req_id, "type": type_, "data": data})

    def push(self, type_: str, data: dict[str, Any]) -> None:
        self.send({"id": "", "type": type_, "data": data})

    def project_of(self, data: dict[str, Any]) -> str:
        project = self.project or data.get("project")
        if not isinstance(project, str) or not project:
            raise BadRequest("no project: use /v1/api/<project>/socket/json or send data.project")
        return project

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            send = self._asgi_send  # the server's own send: Starlette's wrapper only re-checks state
            while self._queue:
                await send({"type": "websocket.send", "text": self._queue.popleft()})
                if len(self._queue) <= self._max_queue // 2:
                    self._room.set()
            self._room.set()
            if self._closing is not None:
                code, reason = self._closing
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason)
                return

    async def serve(self, handlers: dict[str, Handler], on_close: list[CloseHook]) -> None:
        await self.ws.accept()
        writer = asyncio.create_task(self._writer())
        reader = asyncio.create_task(self._reader(handlers))
        overflow = asyncio.create_task(self._overflow.wait())
        try:
            await asyncio.wait({writer, reader, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.closed = True
            self._room.set()
            for task in (writer, reader, overflow):
                task.cancel()
            if self._overflow.is_set():
                # The writer may be stuck on a full socket: drop it, say why, and go.
                log.warning("closing websocket %s: slow consumer (send queue overflowed)", self.id)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(SLOW_CONSUMER, "slow consumer"), 2)
            for hook in on_close:
                try:
                    await hook(self)
                except Exception:
                    log.exception("websocket close hook failed")
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def _reader(self, handlers: dict[str, Handler]) -> None:
        tasks: set[asyncio.Task[None]] = set()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await self.ws.receive_text()
                try:
                    frame = orjson.loads(text)
                except orjson.JSONDecodeError:
                    self.push("error", {"error": "malformed JSON frame"})
                    continue
                if not isinstance(frame, dict):
                    self.push("error", {"error": "a frame must be an object {id, type, data}"})
                    continue
                req_id = frame.get("id")
                req_id = req_id if isinstance(req_id, str) else ""
                type_ = frame.get("type")
                data = frame.get("data")
                handler = handlers.get(type_) if isinstance(type_, str) else None
                if handler is None:
                    self.reply(req_id, str(type_), {"ack": False, "error": f"unknown message type {type_!r}"})
                    continue
                if not isinstance(data, dict):
                    self.reply(req_id, str(type_), {"ack": False, "error": "`data` must be an object"})
                    continue
                if len(tasks) >= self._max_in_flight:
                    self.reply(req_id, str(type_), {"ack": False, "error": f"too many requests in flight on this "
                                                    f"socket (at most {self._max_in_flight}): wait for answers"})
                    continue
                task = asyncio.create_task(self._handle(handler, req_id, str(type_), data))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    async def _handle(self, handler: Handler, req_id: str, type_: str, data: dict[str, Any]) -> None:
        try:
            await handler(self, req_id, data)
        except SpaceCloudError as exc:
            self.reply(req_id, type_, {"ack": False, "error": exc.message})
        except Exception:
            log.exception("websocket handler %s failed", type_)
            self.reply(req_id, type_, {"ack": False, "error": "internal server error"})
