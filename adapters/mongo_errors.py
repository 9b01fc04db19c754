"""Translate pymongo exceptions into adapter errors at the Mongo boundary."""

from __future__ import annotations

from contextlib import AbstractContextManager

from bson.errors import InvalidDocument
from pymongo import errors as pe

from adapters import deadline
from adapters.failures import internal, os_reason, rejected, unavailable
from common.errors import Conflict, SpaceCloudError, Timeout, translated

_REJECTED = {
    2: "a value is not valid for the operation", 9: "the request could not be parsed",
    14: "a value has the wrong type for the operation", 15: "a number is out of range",
    16: "a value is too long", 28: "cannot create a field inside a value that is not an object",
    40: "conflicting update paths", 52: "a field name may not start with $", 56: "a field name is empty",
    160: "an array is too large", 168: "an unknown pipeline operator", 241: "a value cannot be converted",
    10334: "a document is larger than mongo allows (16 MB)", 17419: "a document is larger than mongo allows",
    15998: "a field name is not valid", 16410: "a field name may not start with $",
}
"""Server error codes that are the client's fault (400), with what we tell the client."""
_UNAVAILABLE = {18: "authentication failed", 11600: "the server is shutting down",
                91: "the server is shutting down", 189: "the primary stepped down", 10107: "not the primary"}


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for a pymongo exception (None: not a database error). Our own words
    only: the driver's text goes to the log (`adapters.failures`)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    if isinstance(exc, pe.DuplicateKeyError):
        key = (exc.details or {}).get("keyValue", {}).get("_id")
        return Conflict(f"document with id {key} already exists" if key is not None else "duplicate key")
    code = getattr(exc, "code", None)
    if isinstance(exc, pe.ExecutionTimeout) or code == 50:
        return Timeout("mongo operation exceeded its time limit")
    if isinstance(exc, pe.NetworkTimeout | pe.WTimeoutError) and deadline.deadline() is not None:
        return Timeout("mongo operation exceeded its deadline")  # pymongo.timeout(): the request's deadline
    if isinstance(exc, pe.ServerSelectionTimeoutError):
        return unavailable("mongo", "no server reachable")
    if isinstance(exc, pe.ConnectionFailure | pe.NetworkTimeout):
        return unavailable("mongo", "connection lost")
    if isinstance(exc, OSError):
        return unavailable("mongo", os_reason(exc))
    if isinstance(exc, pe.InvalidOperation) and "closed" in str(exc).lower():
        return unavailable("mongo", "the client is closed")
    if code in _UNAVAILABLE:
        return unavailable("mongo", _UNAVAILABLE[code])
    if isinstance(exc, pe.OperationFailure | pe.WriteError) and code in _REJECTED:
        return rejected("mongo", _REJECTED[code])
    if isinstance(exc, pe.WriteError):
        return rejected("mongo", "the write was refused")
    if isinstance(exc, InvalidDocument | OverflowError):
        return rejected("mongo", "a value cannot be stored in a mongo document")
    if isinstance(exc, pe.PyMongoError):
        return internal("mongo", exc)
    return None


def mongo_errors() -> AbstractContextManager[None]:
    """Re-raise any pymongo exception as an adapter error."""
    return translated(map_error)
