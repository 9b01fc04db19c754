"""`create_adapter`: the one place that turns (kind, conn) into an `Adapter`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from adapters.base import Adapter
from adapters.namespaces import check_namespace
from common.errors import InvalidQuery

KINDS = ("mongo", "postgres", "mysql", "sqlite")


def sqlite_path(conn: str) -> str:
    """`sqlite:///abs/path.db`, `sqlite://rel.db`, `sqlite:///:memory:` or a bare path -> file path."""
    if conn.startswith("sqlite:///"):
        rest = conn[len("sqlite:///"):]
        return rest if rest == ":memory:" else "/" + rest
    if conn.startswith("sqlite://"):
        return conn[len("sqlite://"):]
    return conn


def create_adapter(
    kind: str,
    conn: str,
    *,
    namespace: str,
    collections: dict[str, dict[str, Any]] | None = None,
    database: str | None = None,
) -> Adapter:
    """Build (not connect) an adapter for one project.

    `namespace` is the project id: every collection of the adapter lives in that project's own
    namespace (a schema, a table prefix or a database: `adapters.namespaces`), so projects can share
    a database. `collections` is the project's collections config; the adapter reads `fields` (a
    typed SQL table, e.g. {"todos": {"fields": {"text": "string", "done": "boolean"}}}) and `table`
    (the exact table / Mongo collection to use instead, e.g. one created before namespaces) and
    ignores everything else. `database` names the Mongo database when the URI has none (default: the
    namespace); `mongomock://` is the in-process fake."""
    check_namespace(namespace)
    if kind == "sqlite":
        from adapters.sql.adapter import SqlAdapter
        from adapters.sql.sqlite import SQLiteDriver

        return SqlAdapter("sqlite", SQLiteDriver(sqlite_path(conn)), namespace=namespace, collections=collections)
    if kind == "postgres":
        from adapters.sql.adapter import SqlAdapter
        from adapters.sql.postgres import PostgresDriver

        if urlparse(conn).scheme not in ("postgres", "postgresql"):
            raise InvalidQuery(f"postgres conn must be a postgresql:// URL, got {conn!r}")
        return SqlAdapter("postgres", PostgresDriver(conn), namespace=namespace, collections=collections)
    if kind == "mysql":
        from adapters.sql.adapter import SqlAdapter
        from adapters.sql.mysql import MySQLDriver

        if urlparse(conn).scheme not in ("mysql", "mariadb"):
            raise InvalidQuery(f"mysql conn must be a mysql:// URL, got {conn!r}")
        return SqlAdapter("mysql", MySQLDriver(conn), namespace=namespace, collections=collections)
    if kind == "mongo":
        from adapters.mongo import MongoAdapter

        return MongoAdapter(conn, namespace=namespace, collections=collections, database=database)
    raise InvalidQuery(f"unknown database kind {kind!r} (expected one of {', '.join(KINDS)})")
