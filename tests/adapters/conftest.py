"""Backends for the adapter conformance suite, reusable by other test packages.

`adapter_backends()` gives the pytest params; `open_backend(name, tmp_dir)` is an
async context manager yielding a connected `Backend` (skips when the server is
unreachable, saying which environment variable enables it). The Mongo adapter runs
against three servers: `mongo-fake` (mongomock, in process), `mongo-nx` (nx-27017 over
the wire protocol, started for the session by `nx_mongo_url`) and `mongo-real`
(a MongoDB at `SPACE_CLOUD_TEST_MONGO_URL`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters import deadline
from adapters.base import Adapter, Doc
from adapters.registry import create_adapter
from common.errors import SpaceCloudError
from tests.support.databases import database_url
from tests.support.mongo import nx_mongo_url  # noqa: F401  (a fixture, used through getfixturevalue)

SCHEMA = {
    "name": "string", "age": "integer", "score": "float", "active": "boolean", "tags": "json",
    "meta": "json", "userId": "string", "text": "string", "n": "integer", "s": "string",
    "updatedAt": "datetime", "count": "integer", "note": "string", "nick": "string",
}
"""The fields of every typed test table (documents use subsets; absent = NULL)."""

NAMESPACE = "sc_test"
"""The project every backend of the suite belongs to, unless a test passes `namespace=`."""

BACKENDS = (
    "sqlite-schemaless", "sqlite-typed", "postgres-schemaless", "postgres-typed",
    "mysql-schemaless", "mysql-typed", "mongo-fake", "mongo-nx", "mongo-real",
)
_XFAIL_MARK = "xfail_backend"


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block under a request deadline `seconds` from now (`adapters.deadline`)."""
    token = deadline.set_deadline(time.monotonic() + seconds)
    try:
        yield
    finally:
        deadline.reset_deadline(token)


def xfail_on(name: str, reason: str) -> pytest.MarkDecorator:
    """Mark a test (or one of its params) as a strict expected failure on backend `name` only."""
    return pytest.mark.xfail_backend(name, reason=reason)


def nx_bug(reason: str) -> pytest.MarkDecorator:
    """Expected to fail on nx-27017 (`mongo-nx`) because that server gets `reason` wrong."""
    return xfail_on("mongo-nx", f"nx-27017: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{_XFAIL_MARK}(name, reason): strict xfail on one adapter backend")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("backend") if callspec is not None else None
        for mark in item.iter_markers(_XFAIL_MARK):
            if name is not None and mark.args[0] == name:
                item.add_marker(pytest.mark.xfail(strict=True, reason=mark.kwargs["reason"]))


def adapter_backends() -> list[Any]:
    """pytest params for every backend, marked postgres/mysql where they need a server."""
    marks = {"postgres": [pytest.mark.postgres], "mysql": [pytest.mark.mysql]}
    return [pytest.param(name, id=name, marks=marks.get(name.split("-")[0], [])) for name in BACKENDS]


class Backend:
    """A connected adapter plus helpers to make unique collections and compare docs."""

    def __init__(self, name: str, adapter: Any) -> None:
        self.name = name
        self.adapter: Adapter = adapter
        self.typed = name.endswith("-typed")
        self.id = adapter.id_field
        self.created: list[str] = []

    def col(self, fields: dict[str, str] | None = None) -> str:
        """A fresh, uniquely named collection (typed backends declare `fields`, default SCHEMA)."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        if self.typed:
            self.adapter.collections[name] = {"fields": fields or SCHEMA}  # type: ignore[attr-defined]
        self.created.append(name)
        return name

    def doc(self, doc: Doc) -> Doc:
        """A test document written with `id`, as this backend names the id field."""
        return {(self.id if k == "id" else k): v for k, v in doc.items()}

    def norm(self, doc: Any) -> Any:
        """A returned document with its id field renamed back to `id`."""
        if not isinstance(doc, dict):
            return doc
        return {("id" if k == self.id else k): v for k, v in doc.items()}

    async def seed(self, docs: list[Doc], fields: dict[str, str] | None = None) -> str:
        col = self.col(fields)
        await self.adapter.create(col, [self.doc(d) for d in docs])
        return col


async def _default_conn(name: str, tmp_dir: Path) -> str:
    if name.startswith("sqlite"):
        return str(tmp_dir / "test.db")
    if name == "mongo-fake":
        return f"mongomock://{uuid.uuid4().hex}"
    if name == "mongo-nx":
        pytest.skip("mongo-nx needs conn=: pass the URL of the nx_mongo_url fixture")
    return await database_url(name)


@asynccontextmanager
async def open_backend(
    name: str, tmp_dir: Path, *, conn: str | None = None, **kwargs: Any
) -> AsyncIterator[Backend]:
    """A connected backend; its collections are dropped on exit. `kwargs` go to create_adapter.

    `conn` overrides the connection string; `mongo-nx` needs it (the `nx_mongo_url` fixture).
    """
    kind = name.split("-")[0]
    conn = conn or await _default_conn(name, tmp_dir)
    adapter: Any = create_adapter(
        kind, conn, namespace=kwargs.pop("namespace", NAMESPACE), database=kwargs.pop("database", "sc_test"), **kwargs
    )
    await adapter.connect()
    backend = Backend(name, adapter)
    try:
        yield backend
    finally:
        for col in backend.created:
            try:
                await adapter.drop(col)
            except SpaceCloudError:
                pass
        await adapter.close()


@pytest.fixture(params=adapter_backends())
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    conn = request.getfixturevalue("nx_mongo_url") if request.param == "mongo-nx" else None
    async with open_backend(request.param, tmp_path, conn=conn) as b:
        yield b
