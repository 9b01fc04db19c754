"""The error model: one small hierarchy, a status code on each class, rebuilt from code + message.

Errors cross NATS as a micro-service error (code + description headers) and are rebuilt here,
in one place, into the same classes; the gateway renders any `MeshError` as
`{"error": message}` with its status.
"""

from __future__ import annotations


class MeshError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(MeshError):
    status = 400


class Unauthorized(MeshError):
    status = 401


class Forbidden(MeshError):
    status = 403


class NotFound(MeshError):
    status = 404


class Conflict(MeshError):
    status = 409


class PayloadTooLarge(MeshError):
    status = 413


class InternalError(MeshError):
    status = 500


class ServiceUnavailable(MeshError):
    status = 503


class Timeout(MeshError):
    status = 504


_BY_STATUS: dict[int, type[MeshError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        InternalError,
        ServiceUnavailable,
        Timeout,
    )
}


def from_code(code: str | int, message: str) -> MeshError:
    """Rebuild an error that crossed the wire as (code, message)."""
    try:
        status = int(code)
    except (TypeError, ValueError):
        status = 500
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = MeshError(message)
        err.status = status if 400 <= status < 600 else 500
        return err
    return cls(message)
