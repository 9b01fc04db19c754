"""A running live query: its subscribe/re-subscribe cycle over the socket, its cache and its queue.

After a reconnect it subscribes again from the newest change-log position it was sent: the
`cursor` of the ack of a fresh snapshot, then of each feed that carries one (the server puts it on
at least the last frame of each batch, so a replay cut short is asked for again from its last
complete page), as `options.cursor`. The server prefers it to `options.resumeFrom`, sent beside it
for a server without cursors (and alone when none was sent): the largest time seen (feeds, and
the ack of a fresh snapshot). An ack `resumed` keeps the cache and the missed changes follow as
feeds; any other ack (`reset`) is a complete fresh snapshot that replaces the cache. Feeds that
arrive while a subscribe awaits its ack are held and applied after it. A replay is sent per
document, not in time order, and nothing marks its end: until a change newer than the resumed ack
arrives (the server sends those behind the replay), the time resume point stays where the last
resume started, so a resume by time cut short loses nothing either.

Close codes: 4401, the live query's token expired. A subscription whose token that is (the one it
last subscribed with, still the API's, not a JWT whose `exp` is ahead) does not subscribe again
with it: the iteration raises `Unauthorized` once (code and reason in the message),
`waiting_for_token` is true, and as soon as the app sets another token (`api.set_token`; looked
at every `TOKEN_POLL` seconds) it resubscribes with it and resumes, missing nothing. A resubscribe
refused for its token ("invalid or expired token", e.g. it expired while the network was down) is
handled the same way. 4410 (the gateway's log lost changes) and 4008 (slow consumer) need nothing
special: the resubscribe is answered `reset` or `resumed`. A new token of another user (JWT `id`
or `sub`) is never resumed on: that subscribe asks for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time as clock
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout, Unauthorized, from_code

from .cache import Cache, Feed
from .conditions import Doc
from .socket import Socket

DEFAULT_MAX_PENDING = 1024
TOKEN_EXPIRED = 4401
"""Close code of a connection whose live query's token expired."""
LOG_GAP = 4410
"""Close code of a connection whose live queries missed changes the server's log lost: the resubscribe
is answered `reset`."""
TOKEN_POLL = 0.1
"""Seconds between looks at the API's token while a subscription waits for a new one."""


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


def _claims(token: str | None) -> dict[str, Any] | None:
    """The claims of a JWT, read without checking it (only to tell expiry and user apart); None if not one."""
    parts = token.split(".") if token else []
    if len(parts) != 3:
        return None
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _still_valid(token: str | None) -> bool:
    """Whether a token is known to be valid still: a JWT whose `exp` is ahead of this clock."""
    exp = (_claims(token) or {}).get("exp")
    return isinstance(exp, int | float) and not isinstance(exp, bool) and exp > clock.time()


def _user(token: str | None) -> str | None:
    """Whose token it is (JWT `id`, else `sub`); None when that cannot be read."""
    claims = _claims(token) or {}
    who = claims.get("id", claims.get("sub"))
    return None if who is None else str(who)


def _token_refused(ack: dict[str, Any]) -> bool:
    """A refusal a new token can cure: a 401, or the server's "Auth: invalid or expired token"."""
    return ack.get("status") == 401 or "expired token" in str(ack.get("error") or "").lower()


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
        self._cursor: str | None = None
        """The newest change-log position received (acks of snapshots, feeds that carry one)."""
        self._sent_token: str | None = None
        """The token of the last subscribe."""
        self._waiting: str | None = None
        """While paused for a new token: the expired one."""
        self._remove_close_hook: Callable[[], None] | None = None
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

    @property
    def waiting_for_token(self) -> bool:
        """Paused because its token expired (4401): it resumes once the app sets another token."""
        return self._waiting is not None

    @property
    def cursor(self) -> str | None:
        """The change-log position it would resume from (None: it resumes by time, or has not started)."""
        return self._cursor

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
        self._remove_close_hook = socket.add_close_hook(self._on_close)
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

    def _on_close(self, code: int | None, reason: str) -> None:
        """A 4401 pauses this subscription if its token is the one that expired."""
        if self.closed or self._waiting is not None or code != TOKEN_EXPIRED or not self._subscribed:
            return
        token = self._socket.token()
        # The app may have set a fresh token already (the next subscribe sends it), and a socket closed
        # for another live query's token says nothing of one still valid.
        if not self._sent_token or token != self._sent_token or _still_valid(token):
            return
        self._wait_for_token(f"the live query's token expired ({code}: {reason or 'token expired'})")

    def _wait_for_token(self, why: str) -> None:
        self._waiting = self._sent_token
        self._buffer = None
        self._error = Unauthorized(f"{why}: set a new token (api.set_token) and the live query resumes")
        self._wake.set()
        task = asyncio.get_running_loop().create_task(self._await_token())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await_token(self) -> None:
        # `api.set_token` tells no one (it sets the HTTP client's token): look at it now and then.
        while not self.closed and self._waiting is not None and self._socket.token() == self._waiting:  # noqa: ASYNC110
            await asyncio.sleep(TOKEN_POLL)
        if self.closed or self._waiting is None:
            return
        self._waiting = None
        if self._socket.is_open:  # else its next open subscribes
            await self._subscribe()

    async def _subscribe(self) -> None:
        if self.closed or self._waiting is not None:
            return
        self._attempt += 1
        attempt = self._attempt
        options = dict(self._options)
        token = self._socket.token()
        resume_from: int | None = None
        # Resume only the same user: what another may read is not what this one could.
        if self._subscribed and _user(token) == _user(self._sent_token):
            resume_from = int(self._cache.max_time if self._floor is None else self._floor)
            options["resumeFrom"] = resume_from  # what a server without cursors resumes from
            if self._cursor is not None:
                options["cursor"] = self._cursor  # the exact position: the server then ignores resumeFrom
        data: Doc = {"id": self.id, "group": self.collection, "dbType": self.alias, "project": self._project,
                     "options": options}
        if self._where is not None:
            data["where"] = self._where
        self._buffer = []
        self._sent_token = token
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
        """`resume_from`: the time resume point, None when this subscribe asked for no resume."""
        buffered, self._buffer = self._buffer or [], None
        if not ack.get("ack"):
            if self._subscribed and self._sent_token and _token_refused(ack):
                self._wait_for_token(str(ack.get("error") or "token refused"))  # not the end: a new token cures it
                return
            error = _refusal(ack)
            if self._first is not None and not self._first.done():
                self._first.set_exception(error)
            else:
                self._error = error
            self._end()
            return
        raw_time = ack.get("time")
        time = float(raw_time) if isinstance(raw_time, int | float) and not isinstance(raw_time, bool) else 0.0
        if isinstance(self._error, Unauthorized) and self._waiting is None:
            self._error = None  # an expiry not yet told, already cured: nothing to say
        if ack.get("resumed") and resume_from is not None:
            self.resumes += 1
            self._floor, self._live_after = float(resume_from), time
        else:
            if self._subscribed:
                self.resets += 1
            self._floor = None
            self._cursor = None  # a position in the old snapshot means nothing for this one
            self._cache.clear()
            for row in ack.get("docs") or []:
                feed = Feed.from_wire(row)
                if feed is not None:
                    self._cache.apply(feed)
            self._cache.seen(time)  # the snapshot is complete as of the ack
            if not self._options.get("changesOnly"):
                self._push(Snapshot("initial", self._cache.docs()))
        cursor = ack.get("cursor")
        if isinstance(cursor, str) and cursor:
            self._cursor = cursor
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
        cursor = data.get("cursor")
        if isinstance(cursor, str) and cursor:
            self._cursor = cursor
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
        if self._remove_close_hook is not None:
            self._remove_close_hook()
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
