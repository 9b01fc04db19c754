"""The public surface of `sdk.client` is pinned: what an app imports, and nothing of the plumbing."""

from __future__ import annotations

import sdk.client

CLIENT_NAMES = {
    "API", "DB", "Get", "Aggregate", "Insert", "Update", "Delete", "Batch", "LiveQuery", "Subscription",
    "Snapshot", "AuthResult", "Cache", "Feed", "Cond", "And", "Or", "Condition", "Where", "Doc",
    "cond", "and_", "or_", "generate_find",
}


def test_client_exports() -> None:
    assert set(sdk.client.__all__) == CLIENT_NAMES
    for name in CLIENT_NAMES:
        assert getattr(sdk.client, name) is not None, name
    public = {n for n in dir(sdk.client) if not n.startswith("_")}
    plumbing = {"api", "cache", "conditions", "db", "http", "live", "reads", "socket", "subscription", "users",
                "writes"}
    assert public - plumbing == CLIENT_NAMES, "every public name is listed in __all__"


def test_no_exception_classes_of_its_own() -> None:
    """Errors are the one tree of common/errors.py (exported by `sdk`); the client adds none."""
    for module in (sdk.client, *(getattr(sdk.client, m) for m in ("http", "socket", "subscription", "users"))):
        mine = [v for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, BaseException) and v.__module__.startswith("sdk.client")]
        assert mine == [], module
