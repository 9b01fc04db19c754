"""Tenant namespaces: where one project's collections live, so projects sharing a database never meet.

The namespace is the project id, `[A-Za-z0-9_-]{1,128}`. A collection `col` of project `p` is:

| database | stored as |
|---|---|
| PostgreSQL | table `col` in schema `p` (created on the first write) |
| MySQL/MariaDB, SQLite | table `p$col`, the collection lower-cased, in the connection's database / file |
| Mongo | collection `col` in database `p`; in a database the URI (or `database=`) names: `p.col` |

`$` and `.` occur in neither a project id nor a collection name, so two (project, collection)
pairs never get one name. Where the plain name does not fit (longer than the database allows:
63 bytes for PostgreSQL schemas and Mongo databases, 64 characters for MySQL tables; capitals on a
database that ignores case; a reserved name: `public`, `information_schema`, `pg_*`, `sqlite_*`,
`admin`, `local`, `config`, `system`), the project part is hashed: `<16 hex digits of SHA-256>`
followed by `$` (SQL) or `~` (Mongo) and the start of the name, e.g. `3f0c…$myapp$todos`. The
hashed forms carry a character a plain name cannot, so they never meet a plain name either.

A collection's config may instead name the exact table (collection on Mongo) with `table:`, e.g. to
keep a table created before namespaces: `{"todos": {"table": "todos"}}` (PostgreSQL also takes
`schema.table`). Such a table is used as it is, by whichever project names it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from adapters.names import check_collection, collection_key
from common.errors import InvalidQuery

_NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_TABLE_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
MYSQL_MAX_TABLE = 64
MAX_SCHEMA = 63
MAX_MONGO_DATABASE = 63
_PG_RESERVED = ("public", "information_schema")
_MONGO_RESERVED = ("admin", "local", "config")


def check_namespace(namespace: object) -> str:
    """Return `namespace` if it is a valid project id, else raise InvalidQuery."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidQuery(f"invalid namespace {namespace!r}: a project id is 1-128 of A-Z a-z 0-9 _ -")
    return namespace


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Place:
    """Where a collection's rows live on SQL: `schema` None is the connection's default schema."""

    table: str
    schema: str | None = None
    own_schema: bool = False
    """The schema is the project's own (PostgreSQL): created on the first write."""


def pg_schema(namespace: str) -> str:
    """The PostgreSQL schema of a project."""
    low = namespace.lower()
    if len(namespace) <= MAX_SCHEMA and low not in _PG_RESERVED and not low.startswith("pg_"):
        return namespace
    return f"{_digest(namespace)}${namespace[:40]}"


def prefixed_table(namespace: str, col: str) -> str:
    """The MySQL/SQLite table of a project's collection: always lower-case, at most 64 characters."""
    key = col.lower()
    plain = f"{namespace}${key}"
    if namespace == namespace.lower() and not namespace.startswith("sqlite_") and len(plain) <= MYSQL_MAX_TABLE:
        return plain
    return f"{_digest(namespace, key)}${namespace.lower()[:20]}${key[:25]}"


def mongo_database(namespace: str) -> str:
    """The Mongo database of a project when the conn URI names none."""
    if len(namespace) <= MAX_MONGO_DATABASE and namespace.lower() not in _MONGO_RESERVED:
        return namespace
    return f"{_digest(namespace)}~{namespace[:40]}"


def mongo_prefix(namespace: str) -> str:
    """The collection prefix of a project in a Mongo database it shares (`<project>.`)."""
    if len(namespace) <= 64 and namespace.lower() != "system":
        return namespace + "."
    return f"{_digest(namespace)}~{namespace[:40]}."


def sql_place(kind: str, namespace: str, col: str) -> Place:
    """Where a project's collection lives on a SQL database (no `table:` option)."""
    if kind == "postgres":
        return Place(col, pg_schema(namespace), own_schema=True)
    return Place(prefixed_table(namespace, col))


def explicit_table(kind: str, value: object) -> Place:
    """The place a collection's `table:` option names (validated)."""
    parts = value.split(".") if isinstance(value, str) else []
    most = 2 if kind == "postgres" else 8 if kind == "mongo" else 1
    if not parts or len(parts) > most or not all(_TABLE_PART.fullmatch(p) for p in parts) or (
        kind == "mongo" and (len(value) > 120 or parts[0].lower() == "system")  # type: ignore[arg-type]
    ):
        shape = "name or schema.name" if kind == "postgres" else "dotted name" if kind == "mongo" else "name"
        raise InvalidQuery(f"invalid table option {value!r}: a {shape} of letters, digits and _")
    if kind == "mongo":
        return Place(".".join(parts))
    return Place(parts[-1], parts[0] if len(parts) == 2 else None)


def configured(kind: str, collections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entries of a collections config that concern storage (`fields`, `table`), keyed by the
    name as the database compares it; InvalidQuery for a bad entry or two entries naming one table."""
    out: dict[str, dict[str, Any]] = {}
    names: dict[str, str] = {}
    for name, spec in collections.items():
        if not isinstance(spec, dict) or not (spec.get("fields") or "table" in spec):
            continue
        check_collection(name)
        if "table" in spec:
            explicit_table(kind, spec["table"])
        key = collection_key(kind, name)
        if key in names:
            raise InvalidQuery(f"collections {names[key]!r} and {name!r} are one table on {kind} (names ignore case)")
        names[key] = name
        out[key] = spec
    return out
