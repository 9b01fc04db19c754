"""Document versions and generated ids.

A version is a microsecond timestamp that only grows: every write sets it to
`max(previous + 1, now_us)`. The process-wide `HybridClock` gives the same
guarantee for stores that keep no per-document version (typed tables without `_v`).
"""

from __future__ import annotations

import threading
import time
import uuid


class HybridClock:
    """`tick()` returns max(last + 1, now in microseconds): strictly increasing per process."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def tick(self, at_least: int = 0) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000, at_least)
            return self._last


CLOCK = HybridClock()


def next_version(previous: int | None) -> int:
    """The version for a write to a document whose stored version is `previous` (None: new)."""
    return CLOCK.tick(0 if previous is None else previous + 1)


def new_id() -> str:
    """A generated document id (32 hex characters)."""
    return uuid.uuid4().hex
