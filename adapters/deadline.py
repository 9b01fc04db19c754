"""The deadline of the database work being done now, set by the db worker and read by the adapters.

A context variable, so every statement run for one request sees that request's deadline without it
being passed through each adapter method. Times are `time.monotonic()` seconds.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token

_DEADLINE: ContextVar[float | None] = ContextVar("sc_db_deadline", default=None)


def set_deadline(at: float | None) -> Token[float | None]:
    """Work started from now on (in this context) should be finished by `at` (None: no deadline)."""
    return _DEADLINE.set(at)


def reset_deadline(token: Token[float | None]) -> None:
    _DEADLINE.reset(token)


def deadline() -> float | None:
    return _DEADLINE.get()


def remaining() -> float | None:
    """Seconds left (may be negative); None when no deadline is set."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()
