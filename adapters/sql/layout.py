"""How a collection is stored: schemaless (id, doc, _v) or typed (one column per field).

A `Layout` resolves field paths to `Ref`s for the compiler and converts between
documents and rows. In typed mode a NULL column and a missing field are the same
thing: NULL columns are left out of returned documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.base import Doc
from adapters.names import VERSION_FIELD, check_field
from adapters.sql.dialect import FIELD_TYPES, Dialect
from adapters.values import is_number
from common.errors import InvalidQuery

SCHEMALESS_COLUMNS = frozenset({"id", "doc", VERSION_FIELD})
JSON_DOC = "doc"


@dataclass(frozen=True, slots=True)
class Ref:
    """Where a field's value lives: `kind` is a field type, "number" (computed) or "missing"."""

    expr: str
    kind: str
    parts: tuple[str, ...] = ()
    indexed: bool = False
    """A JSON path an index covers (`adapters.sql.indexes`)."""


@dataclass(slots=True)
class Layout:
    col: str
    """The collection, as messages name it."""
    sql: str
    """Its table as SQL text refers to it: quoted, and schema-qualified when it has a schema."""
    schemaless: bool
    fields: dict[str, str] = field(default_factory=dict)
    has_version: bool = True
    indexed: frozenset[str] = frozenset()
    """Document paths covered by an index the adapter made (`adapters.sql.indexes`)."""

    @property
    def id_kind(self) -> str:
        return "string" if self.schemaless else self.fields["id"]

    def resolve(self, d: Dialect, path: str) -> Ref:
        """The Ref for a dotted field path (validated here)."""
        parts = check_field(path)
        if self.schemaless:
            if path == "id":
                return Ref(d.q("id"), "string")
            return Ref(d.q(JSON_DOC), "json", tuple(parts), path in self.indexed)
        kind = self.fields.get(parts[0])
        if kind is None or (len(parts) > 1 and kind != "json"):
            return Ref("NULL", "missing")
        return Ref(d.q(parts[0]), kind, tuple(parts[1:]))

    def columns(self) -> list[str]:
        cols = ["id", JSON_DOC] if self.schemaless else list(self.fields)
        return [*cols, VERSION_FIELD] if self.has_version else cols

    def decode(self, d: Dialect, row: tuple[Any, ...]) -> tuple[Doc, int | None]:
        """A row (in `columns()` order) as (document, stored version or None)."""
        version = int(row[-1]) if self.has_version else None
        if self.schemaless:
            return {"id": row[0], **_loads(row[1])}, version
        doc: Doc = {}
        for name, value in zip(self.fields, row, strict=False):
            if value is not None:
                doc[name] = decode_value(self.fields[name], value)
        return doc, version

    def encode(self, d: Dialect, doc: Doc) -> dict[str, Any]:
        """Column values for a document (without the version)."""
        if self.schemaless:
            if not isinstance(doc.get("id"), str):
                raise InvalidQuery("id must be a string in a schemaless collection")
            rest = {k: v for k, v in doc.items() if k != "id"}
            return {"id": doc["id"], JSON_DOC: orjson.dumps(rest).decode()}
        unknown = [k for k in doc if k not in self.fields]
        if unknown:
            raise InvalidQuery(f"unknown field {unknown[0]!r} for typed collection {self.col!r}")
        return {name: encode_value(d, name, kind, doc.get(name)) for name, kind in self.fields.items()}

    def stored(self, doc: Doc) -> Doc:
        """The document as it reads back (typed mode drops nulls)."""
        return doc if self.schemaless else {k: v for k, v in doc.items() if v is not None}


def _loads(raw: Any) -> Any:
    return orjson.loads(raw) if isinstance(raw, str | bytes) else raw


def decode_value(kind: str, value: Any) -> Any:
    """A column value as a JSON-compatible document value."""
    if kind == "json":
        return _loads(value)
    if kind == "boolean":
        return bool(value)
    if kind == "integer":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "datetime" and isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def parse_datetime(d: Dialect, value: Any) -> Any:
    """An ISO-8601 string as the dialect's datetime parameter."""
    if not isinstance(value, str):
        raise InvalidQuery(f"expected an ISO-8601 date string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidQuery(f"invalid ISO-8601 date {value!r}") from exc
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if d.name == "postgres":
        return parsed
    if d.name == "mysql":
        return parsed.replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_value(d: Dialect, name: str, kind: str, value: Any) -> Any:
    """A document value as a parameter for a typed column (InvalidQuery if it does not fit)."""
    if value is None:
        return None
    ok = {
        "string": isinstance(value, str),
        "integer": is_number(value) and float(value).is_integer(),
        "float": is_number(value),
        "boolean": isinstance(value, bool),
        "json": True,
        "datetime": isinstance(value, str),
    }[kind]
    if not ok:
        raise InvalidQuery(f"field {name!r} is a {kind} column; cannot store {value!r}")
    if kind == "integer":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "json":
        return orjson.dumps(value).decode()
    if kind == "datetime":
        return parse_datetime(d, value)
    return value


def declared_fields(config: dict[str, Any]) -> dict[str, str]:
    """The typed fields declared in a collection's config ({"fields": {name: type}})."""
    fields = config.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise InvalidQuery("a typed collection needs a non-empty 'fields' object")
    out = {"id": "string"}
    for name, kind in fields.items():
        if len(check_field(name)) != 1 or kind not in FIELD_TYPES:
            raise InvalidQuery(f"invalid typed field {name!r}: {kind!r} (types: {', '.join(FIELD_TYPES)})")
        out[name] = kind
    if out["id"] not in ("string", "integer"):
        raise InvalidQuery("the id field must be a string or integer column")
    return out


def field_type(sql_type: str) -> str:
    """Map an introspected SQL column type to a field type."""
    t = sql_type.lower()
    if t.startswith("tinyint(1)") or t.startswith("bool"):
        return "boolean"
    if "int" in t and "interval" not in t and "point" not in t:
        return "integer"
    if any(w in t for w in ("double", "float", "real", "numeric", "decimal")):
        return "float"
    if "json" in t:
        return "json"
    if "timestamp" in t or "datetime" in t:
        return "datetime"
    return "string"


def create_typed(d: Dialect, table: str, fields: dict[str, str]) -> str:
    """DDL for a typed table with an `id` primary key and a `_v` version column (`table`: the quoted,
    qualified reference)."""
    cols = []
    for name, kind in fields.items():
        sql_type = d.column_types[kind]
        if name == "id":
            sql_type = d.id_string_type if kind == "string" else d.column_types["integer"]
            sql_type += " PRIMARY KEY"
        cols.append(f"{d.q(name)} {sql_type}")
    cols.append(f"{d.q(VERSION_FIELD)} BIGINT NOT NULL DEFAULT 0")  # 0: "not set", the capture triggers give it one
    tail = " DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin" if d.name == "mysql" else ""
    return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)}){tail}"
