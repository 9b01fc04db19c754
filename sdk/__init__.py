"""The Python SDK: `Mesh` for services (`@mesh.function`, calls between services) and the error tree they raise.

Everything a service author needs is importable from here; nothing else in the project is public.
The client for apps lives in `sdk.client` (re-exported below once it lands).
"""

from common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    InvalidQuery,
    NotFound,
    NotImplementedYet,
    PayloadTooLarge,
    ServiceUnavailable,
    SpaceCloudError,
    Timeout,
    TooManyAttempts,
    Unauthorized,
)
from mesh.connect import NatsTarget

from .mesh import Mesh, MeshNotStarted

MeshError = SpaceCloudError
"""The name this base class had in earlier releases."""

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "InternalError",
    "InvalidQuery",
    "Mesh",
    "MeshError",
    "MeshNotStarted",
    "NatsTarget",
    "NotFound",
    "NotImplementedYet",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "SpaceCloudError",
    "Timeout",
    "TooManyAttempts",
    "Unauthorized",
]
