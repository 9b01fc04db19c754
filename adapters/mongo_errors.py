"""Translate pymongo exceptions into adapter errors at the Mongo boundary."""

from __future__ import annotations

from contextlib import AbstractContextManager

from pymongo import errors as pe

from common.errors import Conflict, InvalidQuery, ServiceUnavailable, SpaceCloudError, translated

_BAD_INPUT = {2, 9, 14, 15, 16, 17, 28, 40, 52, 56, 160, 168, 241}
"""BadValue, FailedToParse, TypeMismatch, Overflow, ..., ConflictingUpdateOperators, InvalidOptions."""


def map_error(exc: BaseException) -> SpaceCloudError | None:
    """The adapter error for a pymongo exception (None: not a database error)."""
    if isinstance(exc, SpaceCloudError):
        return exc
    if isinstance(exc, pe.DuplicateKeyError):
        key = (exc.details or {}).get("keyValue", {}).get("_id")
        return Conflict(f"document with id {key} already exists" if key is not None else "duplicate key")
    if isinstance(exc, pe.ConnectionFailure | pe.ServerSelectionTimeoutError | pe.NetworkTimeout | OSError):
        return ServiceUnavailable(f"mongo unavailable: {exc}")
    if isinstance(exc, pe.InvalidOperation) and "closed" in str(exc).lower():
        return ServiceUnavailable(f"mongo unavailable: {exc}")
    if isinstance(exc, pe.OperationFailure) and exc.code in _BAD_INPUT:
        return InvalidQuery(f"mongo rejected the query: {exc}")
    if isinstance(exc, pe.WriteError):
        return InvalidQuery(f"mongo rejected the write: {exc}")
    if isinstance(exc, pe.PyMongoError):
        return SpaceCloudError(f"mongo error: {exc}")
    return None


def mongo_errors() -> AbstractContextManager[None]:
    """Re-raise any pymongo exception as an adapter error."""
    return translated(map_error)
