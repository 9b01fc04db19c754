"""Live queries: `db.live_query(col).where(...)`, an async iterator of snapshots that stays correct.

    async with db.live_query("todos").where(cond("userId", "==", me)) as live:
        async for snap in live:              # Snapshot(type, docs, changed)
            render(snap.docs)

The first snapshot (`type` "initial") is the query's documents; after it, one `Snapshot` per change
(`insert`, `update`, `delete`), with `docs` as they are after that change. The merge is the JS
client's (see cache.py). After a dropped connection the socket reopens by itself and the query
subscribes again with `options.resumeFrom` = the last time it saw: the server replays what was
missed (`resumed`), or sends a complete fresh snapshot (`reset`), which is yielded as a new
"initial". Leaving the `async with`, `aclose()`, or the end of an `async for` over the query
itself tells the server to stop (`realtime-unsubscribe`).

A consumer that falls more than `max_pending` snapshots behind loses the oldest ones (counted in
`dropped`); the documents stay correct, and the next snapshot it gets shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout, from_code

from .cache import Cache, Feed
from .conditions import Doc, Where, where_to_find
from .socket import Socket

DEFAULT_MAX_PENDING = 1024


@dataclass(frozen=True)
class Snapshot:
    """One step of a live query: what happened (`type`), the documents after it, the document it concerned.

    `type` is "initial" (a whole snapshot: the first one, or a fresh one after a reset), "insert",
    "update" or "delete". `changed` is None for "initial"; for a delete it is the last known
    document (or just its id field when the client never saw it).
    """

    type: str
    docs: list[Doc]
    changed: Doc | None = None


class Realtime:
    """The socket of one API and the live queries on it; routes `realtime-feed` pushes by query id."""

    def __init__(self, socket: Socket, project: str) -> None:
        self.socket = socket
        self.project = project
        self.subscriptions: dict[str, Subscription] = {}
        socket.handlers["realtime-feed"] = self._route

    def _route(self, data: dict[str, Any]) -> None:
        sub = self.subscriptions.get(str(data.get("id")))
        if sub is not None:
            sub._on_feed(data)

    async def aclose(self) -> None:
        for sub in list(self.subscriptions.values()):
            sub._end()
        await self.socket.close()


def _refusal(ack: dict[str, Any]) -> SpaceCloudError:
    """The error for a refused subscribe. The nack carries a message and (on Space Cloud) no status."""
    message = str(ack.get("error") or "the live query was refused")
    status = ack.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return from_code(status, message)
    return SpaceCloudError(message)


class Subscription:
    """A running live query. Iterate it for `Snapshot`s; `snapshot` is the current documents."""

    def __init__(self, realtime: Realtime, alias: str, col: str, where: Doc | None, options: Doc, *,
                 timeout: float, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.id = uuid.uuid4().hex
        self.alias = alias
        self.collection = col
        self._rt = realtime
        self._where = where
        self._options = options
        self._timeout = timeout
        self._max_pending = max_pending
        self._cache = Cache()
        self._queue: deque[Snapshot] = deque()
        self._wake = asyncio.Event()
        self._error: SpaceCloudError | None = None
        self._state = "new"
        self._subscribed = False
        self._buffer: list[dict[str, Any]] | None = None
        self._attempt = 0
        self._first: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0
        """Snapshots dropped because the consumer fell `max_pending` behind."""
        self.resumes = 0
        """Reconnects answered with `resumed` (only the missed changes were sent)."""
        self.resets = 0
        """Reconnects answered with a fresh snapshot."""

    @property
    def snapshot(self) -> list[Doc]:
        """The documents now (as of the last change received)."""
        return self._cache.docs()

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    async def start(self) -> None:
        """Subscribe and wait for the server's answer: raises the server's refusal, or
        `ServiceUnavailable`/`Timeout` when it cannot be reached."""
        if self._state != "new":
            return
        self._state = "running"
        socket = self._rt.socket
        self._rt.subscriptions[self.id] = self
        self._first = asyncio.get_running_loop().create_future()
        socket.add_open_hook(self._on_open)
        if socket.is_open:
            self._on_open()
        socket.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._first), self._timeout)
        except TimeoutError:
            self._end()
            raise ServiceUnavailable(f"no answer to the live query on {self.collection!r} "
                                     f"within {self._timeout:g} s (server unreachable?)") from None
        except BaseException:
            self._end()
            raise

    def _on_open(self) -> None:
        task = asyncio.get_running_loop().create_task(self._subscribe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscribe(self) -> None:
        if self.closed:
            return
        self._attempt += 1
        attempt = self._attempt
        options = dict(self._options)
        if self._subscribed:
            options["resumeFrom"] = int(self._cache.max_time)
        data: Doc = {"id": self.id, "group": self.collection, "dbType": self.alias, "project": self._rt.project,
                     "options": options}
        if self._where is not None:
            data["where"] = self._where
        self._buffer = []
        try:
            ack = await self._rt.socket.request("realtime-subscribe", data)
        except ServiceUnavailable:
            return  # the socket closed: its next open subscribes again
        except Timeout as exc:
            if attempt != self._attempt or self.closed:
                return
            self._buffer = None
            if self._first is not None and not self._first.done():
                self._first.set_exception(exc)
            else:
                await self._rt.socket.drop()  # reconnect, and every live query resumes
            return
        if attempt == self._attempt and not self.closed:
            self._on_ack(ack)

    def _on_ack(self, ack: dict[str, Any]) -> None:
        buffered, self._buffer = self._buffer or [], None
        if not ack.get("ack"):
            error = _refusal(ack)
            if self._first is not None and not self._first.done():
                self._first.set_exception(error)
            else:
                self._error = error
            self._end()
            return
        time = ack.get("time")
        if not ack.get("resumed"):
            if self._subscribed:
                self.resets += 1
            self._cache.clear()
            for row in ack.get("docs") or []:
                feed = Feed.from_wire(row)
                if feed is not None:
                    self._cache.apply(feed)
            if not self._options.get("changesOnly"):
                self._push(Snapshot("initial", self._cache.docs()))
        else:
            self.resumes += 1
        if isinstance(time, int | float) and not isinstance(time, bool):
            self._cache.seen(float(time))
        self._subscribed = True
        if self._first is not None and not self._first.done():
            self._first.set_result(None)
        for data in buffered:
            self._apply(data)

    def _on_feed(self, data: dict[str, Any]) -> None:
        if self.closed:
            return
        if self._buffer is not None:  # a subscribe awaits its ack: apply after it
            self._buffer.append(data)
        else:
            self._apply(data)

    def _apply(self, data: dict[str, Any]) -> None:
        feed = Feed.from_wire(data)
        if feed is None or feed.type == "initial":
            return
        changed = feed.payload
        if feed.type == "delete":
            changed = self._cache.get(feed.doc_id) or feed.payload or {}
        if self._options.get("changesOnly"):
            self._cache.seen(feed.time)
            self._push(Snapshot(feed.type, [], changed))
        elif self._cache.apply(feed):
            self._push(Snapshot(feed.type, self._cache.docs(), changed))

    def _push(self, snap: Snapshot) -> None:
        if len(self._queue) >= self._max_pending:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(snap)
        self._wake.set()

    def _end(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        self._rt.socket.remove_open_hook(self._on_open)
        self._rt.subscriptions.pop(self.id, None)
        if self._first is not None and not self._first.done():
            self._first.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._wake.set()

    async def aclose(self) -> None:
        """Stop: the server is told (`realtime-unsubscribe`) and the iteration ends."""
        if self._state == "closed":
            return
        subscribed = self._state == "running"
        self._end()
        socket = self._rt.socket
        if subscribed and socket.is_open:
            data = {"group": self.collection, "id": self.id, "dbType": self.alias, "options": self._options}
            with contextlib.suppress(SpaceCloudError):
                await socket.request("realtime-unsubscribe", data, timeout=min(self._timeout, 5.0))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Snapshot:
        if self._state == "new":
            await self.start()
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self.closed:
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class LiveQuery:
    """`db.live_query(col)`: configure with `where`/`options`, then `async with` or `async for` it."""

    def __init__(self, realtime: Realtime, alias: str, col: str, *, timeout: float,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._rt = realtime
        self.alias = alias
        self.collection = col
        self._timeout = timeout
        self._max_pending = max_pending
        self._where: Doc | None = None
        self._options: Doc = {"changesOnly": False}
        self._active: list[Subscription] = []

    def where(self, *conditions: Where) -> Self:
        """Which documents (as in reads); without `where` the query follows the whole collection."""
        self._where = where_to_find(conditions)
        return self

    def options(self, *, changes_only: bool | None = None, skip_initial: bool | None = None) -> Self:
        """`skip_initial`: start from no documents. `changes_only`: no snapshot is kept; each change
        is yielded with `docs == []` and `changed` (implies `skip_initial`)."""
        if changes_only is not None:
            self._options["changesOnly"] = changes_only
        if skip_initial is not None:
            self._options["skipInitial"] = skip_initial
        if self._options.get("changesOnly"):
            self._options["skipInitial"] = True
        return self

    def subscribe(self) -> Subscription:
        """A new subscription (not started: `await sub.start()`, `async with sub`, or iterate it)."""
        return Subscription(self._rt, self.alias, self.collection, self._where, dict(self._options),
                            timeout=self._timeout, max_pending=self._max_pending)

    async def __aenter__(self) -> Subscription:
        sub = self.subscribe()
        await sub.start()
        self._active.append(sub)
        return sub

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._active:
            await self._active.pop().aclose()

    def __aiter__(self) -> AsyncIterator[Snapshot]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Snapshot]:
        sub = self.subscribe()
        try:
            async for snap in sub:
                yield snap
        finally:
            await sub.aclose()
