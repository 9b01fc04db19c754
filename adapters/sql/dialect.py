"""What differs between PostgreSQL, MySQL/MariaDB and SQLite, and nothing else.

Each dialect knows how to quote identifiers, write placeholders, read a typed
value out of a JSON document at a path, and name column types. The compiler
builds every query from these primitives, so all dialects share one semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from adapters.values import TypeClass

FIELD_TYPES = ("string", "integer", "float", "boolean", "json", "datetime")
_PG_ARRAYS = {"string": "text", "number": "numeric", "integer": "bigint", "float": "float8",
              "boolean": "boolean", "datetime": "timestamptz"}


class Dialect:
    """Base dialect; subclasses fill in the JSON primitives and type names."""

    name: ClassVar[str]
    type_names: ClassVar[dict[TypeClass, tuple[str, ...]]]
    column_types: ClassVar[dict[str, str]]
    id_string_type: ClassVar[str] = "TEXT"
    for_update: ClassVar[str] = " FOR UPDATE"
    nulls_first: ClassVar[str] = ""
    nulls_last: ClassVar[str] = ""

    def q(self, ident: str) -> str:
        """Quote an identifier that has already been validated."""
        return f'"{ident}"'

    def placeholder(self, n: int) -> str:
        return "?"

    def j_type(self, col: str, parts: list[str]) -> str:
        raise NotImplementedError

    def j_num(self, col: str, parts: list[str]) -> str:
        raise NotImplementedError

    def j_str(self, col: str, parts: list[str]) -> str:
        raise NotImplementedError

    def j_raw(self, col: str, parts: list[str]) -> str:
        """The JSON text (or jsonb) of the value at a path; NULL when missing."""
        raise NotImplementedError

    def j_bool_is(self, col: str, parts: list[str], value: bool) -> str:
        names = self.type_names["bool"]
        literal = "'true'" if value else "'false'"
        is_bool = f"COALESCE({self.j_type(col, parts)} = '{names[0]}', FALSE)"
        return f"({is_bool} AND COALESCE({self.j_raw_text(col, parts)} = {literal}, FALSE))"

    def j_raw_text(self, col: str, parts: list[str]) -> str:
        return self.j_raw(col, parts)

    def j_is(self, col: str, parts: list[str], cls: TypeClass) -> str:
        """A NULL-free test that the value at a path has JSON type `cls` (missing counts as null)."""
        names = ", ".join(f"'{n}'" for n in self.type_names[cls])
        null = self.type_names["null"][0]
        return f"(COALESCE({self.j_type(col, parts)}, '{null}') IN ({names}))"

    def limit(self, limit: int | None, skip: int | None) -> str:
        out = ""
        if limit is not None:
            out += f" LIMIT {int(limit)}"
        if skip:
            out += f" OFFSET {int(skip)}"
        return out

    def string_expr(self, col: str) -> str:
        """A text column compared and sorted by code point."""
        return col

    def num_param(self, placeholder: str) -> str:
        """A numeric parameter compared with a typed number column."""
        return placeholder

    def number(self, value: Any) -> Any:
        """A JSON number as a bound parameter."""
        return value

    def in_set(self, expr: str, kind: str, values: list[Any], add: Callable[[Any], str]) -> str:
        """`expr` equals one of many `values` (one type class; `kind` the field type, or "number" /
        "string" for JSON values). Here: a literal IN list (MySQL interpolates parameters into the
        statement, and the server sorts a constant IN list and searches it)."""
        return f"({expr} IN ({', '.join(add(v) for v in values)}))"

    def create_schemaless(self, table: str) -> str:
        """DDL for a schemaless table; `table` is the quoted (qualified) table reference."""
        raise NotImplementedError


class Postgres(Dialect):
    name = "postgres"
    type_names: ClassVar[dict[TypeClass, tuple[str, ...]]] = {
        "null": ("null",), "number": ("number",), "string": ("string",),
        "object": ("object",), "array": ("array",), "bool": ("boolean",),
    }
    column_types: ClassVar[dict[str, str]] = {
        "string": "TEXT", "integer": "BIGINT", "float": "DOUBLE PRECISION", "boolean": "BOOLEAN",
        "json": "JSONB", "datetime": "TIMESTAMPTZ",
    }
    nulls_first = " NULLS FIRST"
    nulls_last = " NULLS LAST"

    def placeholder(self, n: int) -> str:
        return f"${n}"

    def _path(self, parts: list[str]) -> str:
        return "'{" + ",".join(parts) + "}'"

    def j_type(self, col: str, parts: list[str]) -> str:
        return f"jsonb_typeof({self.j_raw(col, parts)})"

    def j_raw(self, col: str, parts: list[str]) -> str:
        return f"({col} #> {self._path(parts)})" if parts else col

    def j_raw_text(self, col: str, parts: list[str]) -> str:
        return f"({col} #>> {self._path(parts)})"

    def j_num(self, col: str, parts: list[str]) -> str:
        return f"({col} #>> {self._path(parts)})::numeric"

    def j_str(self, col: str, parts: list[str]) -> str:
        return f'({col} #>> {self._path(parts)}) COLLATE "C"'

    def string_expr(self, col: str) -> str:
        return f'{col} COLLATE "C"'

    def num_param(self, placeholder: str) -> str:
        return f"{placeholder}::numeric"

    def number(self, value: Any) -> Any:
        # asyncpg sends a float to a numeric parameter exactly (0.1 -> 0.1000000000000000055...),
        # which no stored 0.1 equals: send the float's shortest decimal form instead.
        return Decimal(repr(value)) if isinstance(value, float) else value

    def in_set(self, expr: str, kind: str, values: list[Any], add: Callable[[Any], str]) -> str:
        return f"({expr} = ANY({add(values)}::{_PG_ARRAYS[kind]}[]))"

    def create_schemaless(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} "
            '("id" TEXT PRIMARY KEY, "doc" JSONB NOT NULL, "_v" BIGINT NOT NULL DEFAULT 0)'
        )


class MySQL(Dialect):
    name = "mysql"
    type_names: ClassVar[dict[TypeClass, tuple[str, ...]]] = {
        "null": ("NULL",), "number": ("INTEGER", "DOUBLE", "UNSIGNED INTEGER", "DECIMAL"),
        "string": ("STRING",), "object": ("OBJECT",), "array": ("ARRAY",), "bool": ("BOOLEAN",),
    }
    column_types: ClassVar[dict[str, str]] = {
        "string": "LONGTEXT COLLATE utf8mb4_bin", "integer": "BIGINT", "float": "DOUBLE",
        "boolean": "BOOLEAN", "json": "JSON", "datetime": "DATETIME(6)",
    }
    id_string_type = "VARCHAR(255) COLLATE utf8mb4_bin"

    def q(self, ident: str) -> str:
        return f"`{ident}`"

    def placeholder(self, n: int) -> str:
        return "%s"

    def _path(self, parts: list[str]) -> str:
        return "'$" + "".join("." + p for p in parts) + "'"

    def j_type(self, col: str, parts: list[str]) -> str:
        return f"JSON_TYPE({self.j_raw(col, parts)})"

    def j_raw(self, col: str, parts: list[str]) -> str:
        return f"JSON_EXTRACT({col}, {self._path(parts)})"

    def j_num(self, col: str, parts: list[str]) -> str:
        return f"CAST({self.j_raw(col, parts)} AS DOUBLE)"

    def j_str(self, col: str, parts: list[str]) -> str:
        return f"JSON_UNQUOTE({self.j_raw(col, parts)})"

    def limit(self, limit: int | None, skip: int | None) -> str:
        if skip and limit is None:
            return f" LIMIT 18446744073709551615 OFFSET {int(skip)}"
        return super().limit(limit, skip)

    def create_schemaless(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} (`id` {self.id_string_type} PRIMARY KEY, "
            "`doc` JSON NOT NULL, `_v` BIGINT NOT NULL DEFAULT 0) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        )


class SQLite(Dialect):
    name = "sqlite"
    type_names: ClassVar[dict[TypeClass, tuple[str, ...]]] = {
        "null": ("null",), "number": ("integer", "real"), "string": ("text",),
        "object": ("object",), "array": ("array",), "bool": ("true", "false"),
    }
    column_types: ClassVar[dict[str, str]] = {
        "string": "TEXT", "integer": "INTEGER", "float": "REAL", "boolean": "INTEGER",
        "json": "TEXT", "datetime": "TEXT",
    }
    for_update = ""

    def _path(self, parts: list[str]) -> str:
        return "'$" + "".join("." + p for p in parts) + "'"

    def j_type(self, col: str, parts: list[str]) -> str:
        return f"json_type({col}, {self._path(parts)})"

    def j_raw(self, col: str, parts: list[str]) -> str:
        return f"({col} -> {self._path(parts)})"

    def j_num(self, col: str, parts: list[str]) -> str:
        return f"json_extract({col}, {self._path(parts)})"

    def j_str(self, col: str, parts: list[str]) -> str:
        return f"json_extract({col}, {self._path(parts)})"

    def j_bool_is(self, col: str, parts: list[str], value: bool) -> str:
        return f"COALESCE({self.j_type(col, parts)} = '{'true' if value else 'false'}', FALSE)"

    def in_set(self, expr: str, kind: str, values: list[Any], add: Callable[[Any], str]) -> str:
        param = add(orjson.dumps(values).decode())
        return f"({expr} IN (SELECT value FROM json_each({param})))"  # noqa: S608 -- a placeholder

    def limit(self, limit: int | None, skip: int | None) -> str:
        if skip and limit is None:
            return f" LIMIT -1 OFFSET {int(skip)}"
        return super().limit(limit, skip)

    def create_schemaless(self, table: str) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {table} "
            '("id" TEXT PRIMARY KEY, "doc" TEXT NOT NULL, "_v" INTEGER NOT NULL DEFAULT 0)'
        )


DIALECTS: dict[str, Dialect] = {"postgres": Postgres(), "mysql": MySQL(), "sqlite": SQLite()}
