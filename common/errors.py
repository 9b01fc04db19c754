"""The one error tree of the project: adapters, mesh, the db worker, the gateway and the SDK raise from it.

    SpaceCloudError             500  base; also what an unknown wire code becomes
     ├── BadRequest             400  a client mistake: malformed body, wrong shape, bad name
     │    └── InvalidQuery      400  a find/update/pipeline/option the query model refuses
     ├── Unauthorized           401  no or invalid credentials
     ├── Forbidden              403  a rule said no
     ├── NotFound               404  no such project/database/route, or `op: one` matched nothing
     ├── RequestTimeout         408  the client did not send its request body in time
     ├── Conflict               409  duplicate id / unique violation
     ├── PayloadTooLarge        413  body over the configured limit
     ├── TooManyAttempts        429  back-off after failed sign-ins, or a per-client cap
     ├── NotImplementedYet      501  a Space Cloud module this server does not have (yet)
     ├── ServiceUnavailable     503  a dependency cannot be reached (NATS, a database, no instance)
     │    └── NoInstance        503  nothing serves the subject (NATS no responders): never delivered
     ├── Timeout                504  a dependency did not answer in time
     └── InternalError          500  our own bug; its message never carries driver text

Every class carries its HTTP `status`. Errors cross NATS as code + message (nats micro's error
headers) and are rebuilt by `from_code`, the one factory. `translated()` is how a boundary maps a
foreign library's exceptions onto this tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class SpaceCloudError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(SpaceCloudError):
    status = 400


class InvalidQuery(BadRequest):
    """Malformed find/update/pipeline, unknown or refused operator, bad identifier, type error."""


class Unauthorized(SpaceCloudError):
    status = 401


class Forbidden(SpaceCloudError):
    status = 403


class NotFound(SpaceCloudError):
    status = 404


class RequestTimeout(SpaceCloudError):
    status = 408


class Conflict(SpaceCloudError):
    status = 409


class PayloadTooLarge(SpaceCloudError):
    status = 413


class TooManyAttempts(SpaceCloudError):
    status = 429


class NotImplementedYet(SpaceCloudError):
    status = 501


class ServiceUnavailable(SpaceCloudError):
    status = 503


class NoInstance(ServiceUnavailable):
    """No instance of the service (or worker) is running: the request reached nobody, so it is safe to
    retry; crosses the wire as a plain 503."""


class Timeout(SpaceCloudError):
    status = 504


class InternalError(SpaceCloudError):
    status = 500


_BY_STATUS: dict[int, type[SpaceCloudError]] = {
    cls.status: cls
    for cls in (
        BadRequest, Unauthorized, Forbidden, NotFound, RequestTimeout, Conflict, PayloadTooLarge, TooManyAttempts,
        NotImplementedYet, ServiceUnavailable, Timeout, InternalError,
    )
}


def from_code(code: str | int, message: str) -> SpaceCloudError:
    """Rebuild an error that crossed the wire as (code, message)."""
    try:
        status = int(code)
    except (TypeError, ValueError):
        status = 500
    cls = _BY_STATUS.get(status)
    if cls is None:
        err = SpaceCloudError(message)
        err.status = status if 400 <= status < 600 else 500
        return err
    return cls(message)


@contextmanager
def translated(map_error: Callable[[BaseException], SpaceCloudError | None]) -> Iterator[None]:
    """Re-raise a foreign exception as the error `map_error` gives (None: not one it knows; it goes on)."""
    try:
        yield
    except SpaceCloudError:
        raise
    except Exception as exc:
        mapped = map_error(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc
