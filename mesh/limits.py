"""Fault isolation in two small objects: a `Bulkhead` (how much may run at once) and a `Breaker` (stop
calling what keeps failing). They decide; the caller words the error, since it knows what is limited.

Both are used from one event loop and need no locks. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import time


class Bulkhead:
    """At most `limit` holders at once and `queue` waiting for a turn (first come, first served);
    anything beyond is refused at once, so one overloaded part never grows an unbounded backlog."""

    __slots__ = ("_waiters", "limit", "queue", "rejected", "running", "waiting")

    def __init__(self, limit: int, queue: int = 0) -> None:
        if limit < 1 or queue < 0:
            raise ValueError("a bulkhead needs limit >= 1 and queue >= 0")
        self.limit = limit
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self.rejected = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_enter(self) -> bool:
        """Take a turn if one is free now (no waiting)."""
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return True
        return False

    async def enter(self, deadline: float | None = None) -> bool:
        """Take a turn, waiting in the queue if need be. False: full (refused at once, counted in
        `rejected`). Raises `TimeoutError` when `deadline` passes while waiting."""
        if self.try_enter():
            return True
        if self.waiting >= self.queue:
            self.rejected += 1
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        self.waiting += 1
        try:
            if deadline is None:
                await fut
            else:
                async with asyncio.timeout_at(loop.time() + (deadline - time.monotonic())):
                    await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.leave()  # handed a turn as we gave up: pass it on
            else:
                fut.cancel()
                self.waiting -= 1
            raise
        return True

    def leave(self) -> None:
        """Give the turn back: to the longest waiter, or free it."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self.waiting -= 1
                fut.set_result(None)
                return
        self.running -= 1


CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half-open", OPEN: "open"}


class Breaker:
    """Closed: everything passes and failures are counted: in a row, or with `window`, among the last
    `window` outcomes (so a service with one bad instance out of two, failing every other call, never
    reaches `threshold`, while one whose instances all fail does). `threshold` failures (or `trip()`)
    open it. Open: everything is refused for a cooldown (`cooldown`, doubled at every re-opening up to
    `max_cooldown`). Then one probe passes (half-open): its success closes the breaker, its failure
    opens it again. A probe whose outcome never comes is replaced after another cooldown."""

    __slots__ = ("_cooldown", "_recent", "failures", "last_error", "max_cooldown", "min_cooldown", "opened_at",
                 "retry_at", "state", "threshold", "trips", "window")

    def __init__(self, *, threshold: int = 5, window: int = 0, cooldown: float = 1.0,
                 max_cooldown: float = 30.0) -> None:
        if threshold < 1 or cooldown <= 0 or max_cooldown < cooldown or (window and window < threshold):
            raise ValueError("a breaker needs 1 <= threshold <= window (if any) and 0 < cooldown <= max_cooldown")
        self.threshold = threshold
        self.window = window
        self._recent: collections.deque[bool] = collections.deque(maxlen=window or 1)
        self.min_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._cooldown = cooldown
        self.state = CLOSED
        self.failures = 0
        """Failures in a row, or among the last `window` outcomes."""
        self.trips = 0
        self.last_error = ""
        self.opened_at = 0.0
        """Wall-clock time (`time.time()`) the breaker last opened, for messages."""
        self.retry_at = 0.0

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def allow(self) -> bool:
        """May a call go now? (In the open state, True once per cooldown: that call is the probe.)"""
        if self.state == CLOSED:
            return True
        now = time.monotonic()
        if now < self.retry_at:
            return False
        self.state = HALF_OPEN
        self.retry_at = now + self._cooldown
        return True

    def success(self) -> None:
        if self.state != CLOSED:
            self.state = CLOSED
            self._cooldown = self.min_cooldown
            self._recent.clear()
            self.failures = 0
        elif self.window:
            self._note(False)
        else:
            self.failures = 0

    def _note(self, failed: bool) -> None:
        recent = self._recent
        if len(recent) == self.window and recent[0]:
            self.failures -= 1
        recent.append(failed)
        if failed:
            self.failures += 1

    def failure(self, reason: str) -> None:
        if self.window:
            self._note(True)
        else:
            self.failures += 1
        self.last_error = reason
        if self.state == HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            self._open()
        elif self.state == CLOSED and self.failures >= self.threshold:
            self._open()

    def trip(self, reason: str) -> None:
        """Open now, whatever the count (e.g. a connection that could not be made)."""
        self.last_error = reason
        self.failures = max(self.failures, 1)
        if self.state == HALF_OPEN:
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
        self._open()

    def _open(self) -> None:
        if self.state != OPEN:
            self.trips += 1
            self.opened_at = time.time()
        self.state = OPEN
        self.retry_at = time.monotonic() + self._cooldown

    def describe(self) -> str:
        """Why calls are refused and since when: `failing since 12:00:01Z (3 failures in a row, last: ...);
        next try in 2.0s`."""
        since = time.strftime("%H:%M:%SZ", time.gmtime(self.opened_at))
        wait = max(0.0, self.retry_at - time.monotonic())
        n = self.failures
        count = (f"{n} of the last {len(self._recent)} calls failed" if self.window
                 else f"{n} failure{'s' if n != 1 else ''} in a row")
        return f"failing since {since} ({count}, last: {self.last_error}); next try in {wait:.1f}s"
