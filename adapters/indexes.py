"""Indexes a collection's config declares on document paths: `indexes: [userId, [userId, done]]`.

Each entry is a dotted path, or a list of paths for a compound index. The SQL adapter makes them on
schemaless tables (`adapters.sql.indexes`), the Mongo adapter natively; the config layer checks them
at load with the same `parse`.
"""

from __future__ import annotations

from typing import Any

from adapters.names import check_field, collection_key
from common.errors import InvalidQuery

MAX_INDEXES = 16
MAX_PATHS = 8

Index = tuple[str, ...]
"""The paths of one index, in order."""


def parse(raw: Any, where: str = "indexes") -> list[Index]:
    """`indexes:` (found at `where`, for messages) as a list of indexes (InvalidQuery names a bad entry)."""
    if not isinstance(raw, list) or len(raw) > MAX_INDEXES:
        raise InvalidQuery(f"{where} must be a list of at most {MAX_INDEXES} paths or lists of paths")
    out: list[Index] = []
    for entry in raw:
        paths = [entry] if isinstance(entry, str) else entry
        if not isinstance(paths, list) or not paths or len(paths) > MAX_PATHS:
            raise InvalidQuery(f"{where}: {entry!r} must be a path or a list of 1-{MAX_PATHS} paths")
        for path in paths:
            try:
                check_field(path)
            except InvalidQuery as exc:
                raise InvalidQuery(f"{where}: {exc.message}") from None
            if path in ("id", "_id"):
                raise InvalidQuery(f"{where}: {path!r} is the primary key, always indexed")
        index = tuple(paths)
        if len(set(index)) != len(index):
            raise InvalidQuery(f"{where}: {entry!r} names a path twice")
        if index not in out:
            out.append(index)
    return out


def declared(collections: dict[str, Any], kind: str, col: str) -> list[Index]:
    """The indexes `col`'s entry in a collections config declares (names compared as database `kind`
    compares them)."""
    key = collection_key(kind, col)
    spec = next((s for n, s in collections.items() if collection_key(kind, n) == key), None)
    raw = spec.get("indexes") if isinstance(spec, dict) else None
    return parse(raw, f"collections.{col}.indexes") if raw is not None else []
