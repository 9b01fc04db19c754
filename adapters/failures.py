"""The words for what went wrong below an adapter, in our own terms: what each driver's `map_error`
answers with, so no driver text reaches a client.

- the client's fault (a value of the wrong type, out of range, too large): `rejected` (400) saying what;
- the database cannot be reached or is overloaded: `unavailable` (503) saying why in a few words;
- anything else: `internal` (500, "database error"); the driver's own text goes to the log only.
"""

from __future__ import annotations

import logging
import socket

from common.errors import InternalError, InvalidQuery, ServiceUnavailable

log = logging.getLogger("space_cloud.adapters")


def rejected(db: str, what: str) -> InvalidQuery:
    return InvalidQuery(f"{db} rejected the request: {what}")


def unavailable(db: str, reason: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"{db} unavailable: {reason}")


def internal(db: str, exc: BaseException) -> InternalError:
    log.error("%s error, answered 500 'database error': %s: %s", db, type(exc).__name__, exc)
    return InternalError("database error")


def os_reason(exc: BaseException) -> str:
    """A few words for a network/OS failure (never the exception's own text)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "cannot resolve the host name"
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection lost"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return "connection failed"
