"""Where the test databases are: the local PostgreSQL and MariaDB (or the URLs in the environment), probed once.

Every test folder that needs a real server asks `database_url(name)`; an unreachable one is a skip
that says how to enable it.
"""

from __future__ import annotations

import os

import pytest

from adapters.registry import create_adapter
from common.errors import SpaceCloudError

PG_ENV, MYSQL_ENV, MONGO_ENV = "SPACE_CLOUD_TEST_PG_URL", "SPACE_CLOUD_TEST_MYSQL_URL", "SPACE_CLOUD_TEST_MONGO_URL"
PG_DEFAULTS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
MYSQL_DEFAULT = "mysql://root@127.0.0.1:3306/test"

_reachable: dict[str, str | None] = {}


async def _probe(kind: str, urls: tuple[str, ...]) -> str | None:
    for url in urls:
        adapter = create_adapter(kind, url, namespace="sc_test", database="sc_test")
        try:
            await adapter.connect()
        except SpaceCloudError:
            continue
        await adapter.close()
        return url
    return None


async def database_url(name: str) -> str:
    """The URL of `postgres-*`, `mysql-*` or `mongo-real`; skips the test when it is not reachable."""
    kind = name.split("-")[0]
    if name == "mongo-real":
        url = os.environ.get(MONGO_ENV)
        if not url:
            pytest.skip(f"real MongoDB not configured: set {MONGO_ENV}=mongodb://host:27017/db")
        candidates: tuple[str, ...] = (url,)
        env = MONGO_ENV
    elif kind == "postgres":
        env = PG_ENV
        candidates = (os.environ[PG_ENV],) if os.environ.get(PG_ENV) else PG_DEFAULTS
    else:
        env = MYSQL_ENV
        candidates = (os.environ.get(MYSQL_ENV) or MYSQL_DEFAULT,)
    if name not in _reachable:
        _reachable[name] = await _probe(kind, candidates)
    found = _reachable[name]
    if found is None:
        pytest.skip(f"{kind} unreachable at {candidates[0]}: start it or set {env} to a reachable URL")
    return found
