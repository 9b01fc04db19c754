"""Live queries: `db.live_query(col).where(...)`, an async iterator of snapshots that stays correct.

    async with db.live_query("todos").where(cond("userId", "==", me)) as live:
        async for snap in live:              # Snapshot(type, docs, changed)
            render(snap.docs)

The first snapshot (`type` "initial") is the query's documents; after it, one `Snapshot` per change
(`insert`, `update`, `delete`), with `docs` as they are after that change. The merge is the JS
client's (see cache.py). After a dropped connection the socket reopens by itself and the query
subscribes again from the newest change-log position it was sent (`options.cursor`, preferred
to the time `options.resumeFrom` beside it, which a server without cursors uses): the server
replays what was missed
(`resumed`), or sends a complete fresh snapshot (`reset`, e.g. after a 4410: the log lost
changes), which is yielded as a new "initial". Leaving the `async with`, `aclose()`, or the end of
an `async for` over the query itself tells the server to stop (`realtime-unsubscribe`).

When the live query's token expires (the server closes with 4401), the iteration raises
`Unauthorized` once and the subscription waits (`waiting_for_token`) instead of resubscribing with
the expired token; after `api.set_token(new)` it resubscribes and resumes, missing nothing:

    async with db.live_query("todos") as live:
        while True:
            try:
                async for snap in live:
                    render(snap.docs)
            except Unauthorized:
                api.set_token(await sign_in_again())   # then keep iterating the same `live`

(An `async for` straight over `db.live_query(...)` ends with that error instead.)

A consumer that falls more than `max_pending` snapshots behind loses the oldest ones (counted in
`dropped`); the documents stay correct, and the next snapshot it gets shows them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

from .conditions import Doc, Where, where_to_find
from .socket import Socket
from .subscription import DEFAULT_MAX_PENDING, Snapshot, Subscription


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
        rt = self._rt
        return Subscription(rt.socket, rt.project, rt.subscriptions, self.alias, self.collection, self._where,
                            dict(self._options), timeout=self._timeout, max_pending=self._max_pending)

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
