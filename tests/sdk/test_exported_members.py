"""The public surface of `sdk` is pinned: what a service author (and an app) imports."""

from __future__ import annotations

import sdk

SERVICE_NAMES = {
    "Mesh", "MeshNotStarted", "MeshError", "SpaceCloudError", "BadRequest", "InvalidQuery", "Unauthorized",
    "Forbidden", "NotFound", "Conflict", "PayloadTooLarge", "TooManyAttempts", "NotImplementedYet",
    "ServiceUnavailable", "Timeout", "InternalError", "NatsTarget",
}


def test_exported_members() -> None:
    exported = set(sdk.__all__)
    assert SERVICE_NAMES <= exported
    for name in exported:
        assert hasattr(sdk, name), name
    assert {n for n in dir(sdk) if not n.startswith("_") and n[0].isupper()} <= exported


def test_errors_are_the_servers_tree() -> None:
    from common import errors

    assert sdk.SpaceCloudError is errors.SpaceCloudError is sdk.MeshError
    assert issubclass(sdk.InvalidQuery, sdk.BadRequest)
    assert sdk.BadRequest.status == 400 and sdk.ServiceUnavailable.status == 503
