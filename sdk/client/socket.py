"""The JSON WebSocket (`/v1/api/<project>/socket/json`), reconnecting by itself.

Frames are `{"id", "type", "data"}`; the token goes into every `data` (as space-api sends it).
A reply is routed to its request by `id`; pushes (`id: ""`) go to the handler of their `type`.
After any close the socket reopens after `reconnect_min` seconds, doubling up to `reconnect_max`,
with jitter; every (re)open runs the open hooks, which is how live queries subscribe again, and
every close runs the close hooks with the close code and reason (1006 and "" when the connection
just failed): how live queries learn of 4401, a token that expired. A request on a closed socket,
or one whose socket closes before the reply, raises `ServiceUnavailable`; no reply within the
timeout raises `Timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection, connect

from common.errors import ServiceUnavailable, Timeout

log = logging.getLogger("space_cloud.client")

Push = Callable[[dict[str, Any]], None]
Hook = Callable[[], None]
CloseHook = Callable[[int | None, str], None]


class Socket:
    def __init__(self, url: str, token: Callable[[], str | None], *, request_timeout: float = 10.0,
                 reconnect_min: float = 0.5, reconnect_max: float = 10.0,
                 max_frame_bytes: int = 64 * 1024 * 1024) -> None:
        self.url = url
        self._token = token
        self.request_timeout = request_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self._max_frame = max_frame_bytes
        self.handlers: dict[str, Push] = {}
        self._open_hooks: list[Hook] = []
        self._close_hooks: list[CloseHook] = []
        self._state_hooks: list[Callable[[bool], None]] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._opened = asyncio.Event()
        self.opens = 0
        """How many times the socket has opened (1 + the reconnects)."""
        self.last_close: tuple[int | None, str] | None = None
        """The code and reason of the last close (None: it has not closed since it opened)."""

    @property
    def is_open(self) -> bool:
        return self._ws is not None

    def start(self) -> None:
        """Open the socket in the background if it is not running."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="space-cloud-socket")

    def add_open_hook(self, hook: Hook) -> None:
        self._open_hooks.append(hook)

    def remove_open_hook(self, hook: Hook) -> None:
        with contextlib.suppress(ValueError):
            self._open_hooks.remove(hook)

    def token(self) -> str | None:
        """The token sent with every frame now."""
        return self._token()

    def add_close_hook(self, hook: CloseHook) -> Callable[[], None]:
        """`hook(code, reason)` after every close of an open connection (before the state hooks); returns
        a remover."""
        self._close_hooks.append(hook)
        return lambda: self._close_hooks.remove(hook) if hook in self._close_hooks else None

    def add_state_hook(self, hook: Callable[[bool], None]) -> Callable[[], None]:
        """`hook(True)` after every open, `hook(False)` after every close; returns a remover."""
        self._state_hooks.append(hook)
        return lambda: self._state_hooks.remove(hook) if hook in self._state_hooks else None

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            conn: ClientConnection | None = None
            try:
                async with connect(self.url, max_size=self._max_frame, open_timeout=self.request_timeout,
                                   close_timeout=2) as ws:
                    attempt = 0
                    conn = self._ws = ws
                    self.last_close = None
                    self._opened.set()
                    self.opens += 1
                    self._notify(True)
                    for hook in list(self._open_hooks):
                        hook()
                    async for raw in ws:
                        self._receive(raw)
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.debug("socket %s: %s", self.url, exc)
            except Exception:  # never stop reconnecting because of one bad connection
                log.exception("socket %s failed", self.url)
            finally:
                was_open = self._ws is not None
                self._ws = None
                self._opened.clear()
                self._fail_pending()
                if was_open:
                    code = conn.close_code if conn is not None else None
                    self.last_close = (code, (conn.close_reason or "") if conn is not None else "")
                    self._closed(*self.last_close)
                    self._notify(False)
            if self._closing:
                break
            delay = min(self.reconnect_max, self.reconnect_min * 2**attempt)
            attempt += 1
            await asyncio.sleep(delay * (0.75 + random.random() * 0.5))  # noqa: S311 (jitter, not a secret)

    def _notify(self, is_open: bool) -> None:
        for hook in list(self._state_hooks):
            try:
                hook(is_open)
            except Exception:
                log.exception("connection state hook failed")

    def _closed(self, code: int | None, reason: str) -> None:
        for hook in list(self._close_hooks):
            try:
                hook(code, reason)
            except Exception:
                log.exception("close hook failed")

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable("the WebSocket closed before the server replied"))
        self._pending.clear()

    def _receive(self, raw: str | bytes) -> None:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("socket %s: a frame that is not JSON", self.url)
            return
        if not isinstance(frame, dict):
            return
        data = frame.get("data")
        data = data if isinstance(data, dict) else {}
        rid = frame.get("id")
        waiting = self._pending.pop(rid, None) if isinstance(rid, str) and rid else None
        if waiting is not None:
            if not waiting.done():
                waiting.set_result(data)
            return
        handler = self.handlers.get(str(frame.get("type")))
        if handler is not None:
            try:
                handler(data)
            except Exception:
                log.exception("handler for %s failed", frame.get("type"))

    async def send(self, type_: str, data: dict[str, Any], rid: str = "") -> None:
        """Send one frame now; `ServiceUnavailable` if the socket is not open."""
        ws = self._ws
        if ws is None:
            raise ServiceUnavailable("the WebSocket is not connected")
        token = self._token()
        payload = {**data, "token": token} if token else data
        try:
            await ws.send(orjson.dumps({"id": rid or uuid.uuid4().hex, "type": type_, "data": payload}).decode())
        except websockets.ConnectionClosed:
            raise ServiceUnavailable("the WebSocket closed") from None

    async def request(self, type_: str, data: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a request frame and wait for the reply's `data`."""
        rid = uuid.uuid4().hex
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self.send(type_, data, rid)
            wait = self.request_timeout if timeout is None else timeout
            try:
                return await asyncio.wait_for(asyncio.shield(fut), wait)
            except TimeoutError:
                raise Timeout(f"no reply to {type_} within {wait:g} s") from None
        finally:
            self._pending.pop(rid, None)
            if not fut.done():
                fut.cancel()

    async def wait_open(self, timeout: float) -> None:
        """Until the socket is open; `ServiceUnavailable` after `timeout` seconds."""
        self.start()
        try:
            await asyncio.wait_for(self._opened.wait(), timeout)
        except TimeoutError:
            raise ServiceUnavailable(f"cannot open the WebSocket {self.url} within {timeout:g} s") from None

    async def drop(self) -> None:
        """Close the current connection (it reopens by itself); for tests and network changes."""
        ws = self._ws
        if ws is not None:
            await ws.close(4000, "dropped by the client")

    async def close(self) -> None:
        """Close for good (a later `start()` opens again)."""
        self._closing = True
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(1000, "closed by the client")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_pending()
