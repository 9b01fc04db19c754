"""What travels with one request through every process: its id and its deadline.

Both live in context variables, so a log line, a nested `mesh.call` or a database statement made
while handling a request finds them without being handed them. They cross NATS as headers
(`mesh.messages.REQUEST_ID_HEADER`, `TIMEOUT_HEADER`), set by the requester and read by the
service runtime (`mesh.service`).

Deadlines are `time.monotonic()` seconds: the wire carries the caller's remaining budget, never a
wall-clock instant, so clock skew between machines cannot expire work early.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextvars import ContextVar, Token

REQUEST_ID: ContextVar[str | None] = ContextVar("sc_request_id", default=None)
DEADLINE: ContextVar[float | None] = ContextVar("sc_deadline", default=None)
"""`time.monotonic()` instant after which the caller no longer waits (None: no deadline known)."""

_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A process-unique id: a random prefix per process and a counter (cheap, and sortable per process)."""
    return f"{_PREFIX}-{next(_COUNTER):x}"


def sane_request_id(value: str | bytes | None) -> str | None:
    """An incoming id worth keeping (printable, at most 128 characters, no spaces or quotes), else None."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text if _SANE.match(text) else None


def request_id() -> str | None:
    return REQUEST_ID.get()


def set_request_id(rid: str | None) -> Token[str | None]:
    return REQUEST_ID.set(rid)


def deadline() -> float | None:
    return DEADLINE.get()


def set_deadline(at: float | None) -> Token[float | None]:
    return DEADLINE.set(at)


def remaining() -> float | None:
    """Seconds left before the current request's deadline (may be negative); None without one."""
    at = DEADLINE.get()
    return None if at is None else at - time.monotonic()


def budget(timeout: float) -> float:
    """`timeout`, shortened to what is left of the current request's deadline (a nested call never outlives it)."""
    at = DEADLINE.get()
    if at is None:
        return timeout
    return min(timeout, at - time.monotonic())
