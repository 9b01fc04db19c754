"""A running live query: its subscribe/re-subscribe cycle over the socket, its cache and its queue.

After a reconnect it subscribes again with `options.resumeFrom`: the largest time seen (feeds, and
the ack of a fresh snapshot). An ack `resumed` keeps the cache and the missed changes follow as
feeds; any other ack is a complete fresh snapshot that replaces the cache. Feeds that arrive while
a subscribe awaits its ack are held and applied after it.

A replay is sent per document, not in time order, and nothing marks its end: until a change newer
than the resumed ack arrives (the server sends those behind the replay), the resume point stays
where the last resume started, so a connection lost in the middle of a replay loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout, from_code

from .cache import Cache, Feed
from .conditions import Doc
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


def _refusal(ack: dict[str, Any]) -> SpaceCloudError:
    """The error for a refused subscribe. The nack carries a message and (on Space Cloud) no status."""
    message = str(ack.get("error") or "the live query was refused")
    status = ack.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        return from_code(status, message)
    return SpaceCloudError(message)


class Subscription:
    """A running live query. Iterate it for `Snapshot`s; `snapshot` is the current documents."""

    def __init__(self, socket: Socket, project: str, registry: dict[str, Subscription], alias: str, col: str,
                 where: Doc | None, options: Doc, *, timeout: float, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.id = uuid.uuid4().hex
        self.alias = alias
        self.collection = col
        self._socket = socket
        self._project = project
        self._registry = registry
        """Live queries of the socket by id: where `realtime-feed` pushes are routed from."""
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
        self._floor: float | None = None
        """While a replay may be incomplete: the resume point it started from."""
        self._live_after = 0.0
        """The resumed ack's time: a feed newer than this is live, so the replay before it is complete."""
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
        socket = self._socket
        self._registry[self.id] = self
        self._first = asyncio.get_running_loop().create_future()
        socket.add_open_hook(self._on_open)
        if socket.is_open:
            self._on_open()
        socket.start()
        try:
            await asyncio.wait_for(asyncio.shield(self._first), 2 * self._timeout)  # open + reply
        except TimeoutError:
            self._end()
            raise ServiceUnavailable(f"no answer to the live query on {self.collection!r} "
                                     f"within {2 * self._timeout:g} s (server unreachable?)") from None
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
        resume_from: int | None = None
        if self._subscribed:
            resume_from = int(self._cache.max_time if self._floor is None else self._floor)
            options["resumeFrom"] = resume_from
        data: Doc = {"id": self.id, "group": self.collection, "dbType": self.alias, "project": self._project,
                     "options": options}
        if self._where is not None:
            data["where"] = self._where
        self._buffer = []
        try:
            ack = await self._socket.request("realtime-subscribe", data)
        except ServiceUnavailable:
            return  # the socket closed: its next open subscribes again
        except Timeout as exc:
            if attempt != self._attempt or self.closed:
                return
            self._buffer = None
            if self._first is not None and not self._first.done():
                self._first.set_exception(exc)
            else:
                await self._socket.drop()  # reconnect, and every live query resumes
            return
        if attempt == self._attempt and not self.closed:
            self._on_ack(ack, resume_from)

    def _on_ack(self, ack: dict[str, Any], resume_from: int | None) -> None:
        buffered, self._buffer = self._buffer or [], None
        if not ack.get("ack"):
            error = _refusal(ack)
            if self._first is not None and not self._first.done():
                self._first.set_exception(error)
            else:
                self._error = error
            self._end()
            return
        raw_time = ack.get("time")
        time = float(raw_time) if isinstance(raw_time, int | float) and not isinstance(raw_time, bool) else 0.0
        if ack.get("resumed") and resume_from is not None:
            self.resumes += 1
            self._floor, self._live_after = float(resume_from), time
        else:
            if self._subscribed:
                self.resets += 1
            self._floor = None
            self._cache.clear()
            for row in ack.get("docs") or []:
                feed = Feed.from_wire(row)
                if feed is not None:
                    self._cache.apply(feed)
            self._cache.seen(time)  # the snapshot is complete as of the ack
            if not self._options.get("changesOnly"):
                self._push(Snapshot("initial", self._cache.docs()))
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
        if self._floor is not None and feed.time > self._live_after:
            self._floor = None  # a live change: the replay before it has arrived in full
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
        self._socket.remove_open_hook(self._on_open)
        self._registry.pop(self.id, None)
        if self._first is not None and not self._first.done():
            self._first.cancel()
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._wake.set()

    async def aclose(self) -> None:
        """Stop: the server is told (`realtime-unsubscribe`, not waiting for its ack) and the iteration ends."""
        if self._state == "closed":
            return
        subscribed = self._state == "running"
        self._end()
        socket = self._socket
        if subscribed and socket.is_open:
            data = {"group": self.collection, "id": self.id, "dbType": self.alias, "options": self._options}
            with contextlib.suppress(SpaceCloudError):
                await socket.send("realtime-unsubscribe", data)

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
