"""The send side of one WebSocket: a bounded queue of frames, written as cheaply as the server allows.

Under uvicorn without compression (`gateway.wsraw`), frames queued during one event-loop turn are
written to the transport in one write by the loop's `Flusher`, with no task per socket; a writer
task is started only while the transport is paused (the peer reads slowly) or to close. Otherwise
frames go through ASGI `websocket.send` from a writer task, as any ASGI server takes them.

Overflow policy: more than `max_queue` frames waiting is a slow consumer. Its queue is dropped and
it gets close code 4008; if the close cannot be sent within `CLOSE_GRACE` seconds (its buffers are
full), the connection is dropped. It never slows anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.websockets import WebSocket

from .http import Send
from .metrics import FRAMES
from .peer import FeedFrame
from .wsraw import Flusher, RawTransport, flusher, text_frame, uvicorn_protocol

SLOW_CONSUMER = 4008
"""Close code for a socket whose send queue overflowed."""
CLOSE_GRACE = 2.0


class Outbox:
    __slots__ = ("_asgi_send", "_closing", "_direct", "_flusher", "_marked", "_max_queue", "_proto", "_queue",
                 "_raw", "_room", "_wake", "_writer", "gone", "overflowed", "ws")

    def __init__(self, ws: WebSocket, asgi_send: Send, *, max_queue: int, direct: bool = True) -> None:
        self.ws = ws
        self._asgi_send = asgi_send
        self._max_queue = max_queue
        self._direct = direct
        self._queue: list[Any] = []
        """Frames to send: text (through ASGI), or encoded frames (`_raw`)."""
        self._proto: Any = None
        self._raw: RawTransport | None = None
        self._flusher: Flusher | None = None
        self._marked = False
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None
        self.gone = False
        """The socket's handler has ended: nothing more is sent."""
        self.overflowed = False

    def start(self) -> None:
        """After the handshake: choose how frames are written."""
        self._proto = uvicorn_protocol(self._asgi_send)
        if self._direct and self._proto is not None:
            self._raw = RawTransport.of(self._proto)
        if self._raw is not None:
            self._raw.slim()
            self._flusher = flusher()
        else:
            self._start_writer()

    @property
    def closing(self) -> bool:
        return self._closing is not None

    # -- queueing -------------------------------------------------------------------------------

    def push_text(self, text: str) -> None:
        self._push(text if self._raw is None else text_frame(text.encode()))

    def push_feed(self, qid: str, frame: FeedFrame) -> None:
        self._push(frame.ws_text(qid) if self._raw is None else frame.ws_frame(qid))

    def _push(self, item: str | bytes) -> None:
        if self.gone or self._closing is not None:
            FRAMES.dropped += 1
            return
        if len(self._queue) >= self._max_queue:
            FRAMES.dropped += len(self._queue) + 1
            FRAMES.slow_closes += 1
            self._queue.clear()
            self.overflowed = True
            self._shut(SLOW_CONSUMER, "slow consumer: send queue overflowed")
            return
        FRAMES.queued += 1
        self._queue.append(item)
        if self._flusher is None:
            self._kick()
        elif not self._marked:
            self._marked = True
            self._flusher.mark(self)

    def flush_now(self) -> None:
        """The flusher's callback: what is queued, in one write, unless the transport is paused (the writer
        task then waits for it to drain)."""
        self._marked = False
        raw = self._raw
        if raw is None or not self._queue or self.gone:
            return
        if not raw.ready:
            self._start_writer()
            return
        self._write_raw(raw)

    def _write_raw(self, raw: RawTransport) -> None:
        frames, self._queue = self._queue, []
        raw.write(frames)
        if self._room is not None:
            self._room.set()

    async def writable(self) -> None:
        """Wait until the send queue is at most half full, or the socket is going away."""
        while len(self._queue) > self._max_queue // 2 and not self.gone and self._closing is None:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            with contextlib.suppress(TimeoutError):  # look at `gone` again now and then
                await asyncio.wait_for(self._room.wait(), 0.5)

    # -- writing and closing ----------------------------------------------------------------------

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _start_writer(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            raw = self._raw
            if raw is not None:
                while self._queue and not raw.gone:
                    await raw.drained()
                    if self._queue and not raw.gone:
                        self._write_raw(raw)
            else:
                send = self._asgi_send  # the server's own send: Starlette's wrapper only re-checks state
                while self._queue:
                    await send({"type": "websocket.send", "text": self._queue.pop(0)})
                    if self._room is not None and len(self._queue) <= self._max_queue // 2:
                        self._room.set()
            if self._room is not None:
                self._room.set()
            if self._closing is not None:
                await self._send_close(*self._closing)
                return
            if raw is not None and not self._queue:
                return  # drained: the flusher writes again

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then close the socket."""
        if self._closing is None and not self.gone:
            self._closing = (code, reason)
            self._start_writer()

    def _shut(self, code: int, reason: str) -> None:
        """Close now, whatever is queued or being written (a slow consumer)."""
        self._closing = (code, reason)
        if self._writer is not None:
            self._writer.cancel()
        self._writer = asyncio.get_running_loop().create_task(self._send_close(code, reason))

    async def _send_close(self, code: int, reason: str) -> None:
        """The close frame; a peer that cannot take it within `CLOSE_GRACE` seconds is dropped."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(code, reason), CLOSE_GRACE)
        if self.overflowed and self._proto is not None and not self._proto.disconnected:
            self._proto.transport.abort()

    def stop(self) -> None:
        """The socket's handler ended."""
        self.gone = True
        self._queue.clear()
        if self._room is not None:
            self._room.set()
        if self._writer is not None:
            self._writer.cancel()
