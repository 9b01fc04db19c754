"""Errors an adapter may raise. No driver exception type escapes an adapter.

Each error carries the HTTP-like status the rest of the system maps it to, so the
worker can send it across NATS as code + message without knowing adapter details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class DataError(Exception):
    """Base class: `status` is the HTTP status the gateway answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidQuery(DataError):
    """Malformed find/update/pipeline, unknown or refused operator, bad identifier, type error."""

    status = 400


class NotFound(DataError):
    """`op: one` matched nothing (read/update/delete)."""

    status = 404


class Conflict(DataError):
    """Duplicate id / unique violation."""

    status = 409


class Unavailable(DataError):
    """The database cannot be reached (connection refused, pool closed, server gone)."""

    status = 503


@contextmanager
def translated(map_error: Callable[[BaseException], DataError | None]) -> Iterator[None]:
    """Re-raise a driver's exception as the adapter error `map_error` gives (None: not a database error)."""
    try:
        yield
    except Exception as exc:
        mapped = map_error(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc
