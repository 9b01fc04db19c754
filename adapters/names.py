"""Validation of the names that reach a database: collections and field paths.

Names are checked against a strict pattern before they are ever quoted into SQL or
sent to Mongo, so a field like `a; DROP TABLE x` is an `InvalidQuery`, never SQL.
"""

from __future__ import annotations

import re

from common.errors import InvalidQuery

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SEGMENT = 63
MAX_PATH = 255
MAX_DEPTH = 8

VERSION_FIELD = "_v"
"""Internal per-document version; reserved on every backend, never returned."""


def check_collection(name: object) -> str:
    """Return `name` if it is a valid collection/table name, else raise InvalidQuery."""
    if not isinstance(name, str) or not _SEGMENT.fullmatch(name) or len(name) > MAX_SEGMENT:
        raise InvalidQuery(f"invalid collection name {name!r}: use letters, digits and _ (max 63)")
    return name


CASE_INSENSITIVE = frozenset({"sqlite", "mysql"})
"""Databases whose table names compare ignoring case (SQLite always; MySQL/MariaDB with some
`lower_case_table_names`, so their adapters always use lower-case table names)."""


def collection_key(kind: str, col: str) -> str:
    """A collection name as database `kind` compares it: two names with one key are one collection
    (lower-case on sqlite and mysql, unchanged on postgres and mongo). Look rules up by this key."""
    return col.lower() if kind in CASE_INSENSITIVE else col


def check_field(path: object) -> list[str]:
    """Validate a (dotted) field path and return its segments."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise InvalidQuery(f"invalid field name {path!r}")
    parts = path.split(".")
    if len(parts) > MAX_DEPTH:
        raise InvalidQuery(f"invalid field name {path!r}: nested deeper than {MAX_DEPTH}")
    for part in parts:
        if not _SEGMENT.fullmatch(part) or len(part) > MAX_SEGMENT:
            raise InvalidQuery(f"invalid field name {path!r}: segments must match [A-Za-z_][A-Za-z0-9_]*")
    if parts[0] == VERSION_FIELD:
        raise InvalidQuery(f"field name {VERSION_FIELD!r} is reserved")
    return parts


def check_key(key: object) -> str:
    """Validate a key nested inside a document value (not a queryable top-level field)."""
    if not isinstance(key, str) or not key or key.startswith("$") or "." in key or "\x00" in key:
        raise InvalidQuery(f"invalid key {key!r} in document: keys may not start with $ or contain '.'")
    return key


REFUSED = {"$where", "$function", "$accumulator", "$expr", "$out", "$merge", "$jsonSchema"}
"""Operators never accepted from a client: they run code or write elsewhere."""


def unknown(op: str, where: str) -> InvalidQuery:
    """The error for an operator that is refused or not supported."""
    if op in REFUSED:
        return InvalidQuery(f"operator {op} is not allowed in {where}")
    return InvalidQuery(f"unknown operator {op} in {where}")
