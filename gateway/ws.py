"""The JSON WebSocket (`/v1/api/<project>/socket/json` and the legacy `/v1/api/socket/json`).

Frames are `{"id", "type", "data"}`; replies echo the request's id and type, pushes carry `id: ""`.
Each socket has a bounded send queue (`gateway.wsout`): a consumer too slow to keep up is closed
with code 4008 and never slows anyone else. Under uvicorn, frames go straight to the socket's
transport, those of one event-loop turn in one write (`gateway.wsraw`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.errors import BadRequest, SpaceCloudError

from .http import Send
from .peer import FeedFrame
from .wsout import SLOW_CONSUMER, Outbox

__all__ = ["SLOW_CONSUMER", "Client"]

log = logging.getLogger("space_cloud.ws")

Handler = Callable[["Client", str, dict[str, Any]], Awaitable[None]]
CloseHook = Callable[["Client"], Awaitable[None]]


class Client:
    """One WebSocket (a `gateway.peer.Peer`). Its reader runs in the connection's own ASGI task; frames
    go out through its `Outbox`."""

    kind = "websocket"

    def __init__(self, ws: WebSocket, asgi_send: Send, *, project: str | None, max_queue: int,
                 max_in_flight: int = 64, direct: bool = True) -> None:
        self.ws = ws
        self._max_in_flight = max_in_flight
        self.id = uuid.uuid4().hex
        self.project = project
        self._out = Outbox(ws, asgi_send, max_queue=max_queue, direct=direct)
        self.closed = False

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame; never blocks. Overflow closes the socket (slow consumer)."""
        self._out.push_text(orjson.dumps(frame).decode())

    def send_text(self, text: str) -> None:
        """Queue an already serialised frame (fan-out serialises once for many sockets)."""
        self._out.push_text(text)

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        """A live-query change: the frame is made once for all the sockets of that query (and live query id)."""
        self._out.push_feed(qid, frame)

    async def writable(self) -> None:
        """Wait until the send queue is at most half full, or the socket is going away."""
        await self._out.writable()

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close the socket."""
        self._out.close(code, reason)

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        self.send({"id": req_id, "type": type_, "data": data})

    def push(self, type_: str, data: dict[str, Any]) -> None:
        self.send({"id": "", "type": type_, "data": data})

    def project_of(self, data: dict[str, Any]) -> str:
        project = self.project or data.get("project")
        if not isinstance(project, str) or not project:
            raise BadRequest("no project: use /v1/api/<project>/socket/json or send data.project")
        return project

    async def serve(self, handlers: dict[str, Handler], on_close: list[CloseHook]) -> None:
        await self.ws.accept()
        self._out.start()
        try:
            await self._reader(handlers)  # until the peer goes (a close, from either side, or a drop)
        finally:
            self.closed = True
            self._out.stop()
            if self._out.overflowed:
                log.warning("closed websocket %s: slow consumer (send queue overflowed)", self.id)
            for hook in on_close:
                try:
                    await hook(self)
                except Exception:
                    log.exception("websocket close hook failed")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 1)

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
