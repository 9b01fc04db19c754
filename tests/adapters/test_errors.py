"""Driver errors in our own words: the client's fault is a 400 saying what, an unreachable database a
503 saying why, anything else a 500 'database error'; the driver's text only ever reaches the log."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import asyncpg
import pymysql  # type: ignore[import-untyped]
import pytest
from pymongo import errors as pe

from adapters.base import ReadOptions
from adapters.mongo_errors import map_error as mongo_map
from adapters.sql.mysql import map_error as mysql_map
from adapters.sql.postgres import map_error as pg_map
from adapters.sql.sqlite import map_error as sqlite_map
from common.errors import InternalError, InvalidQuery, ServiceUnavailable, SpaceCloudError, Timeout
from tests.adapters.conftest import Backend

SECRET = "relation-secret-42 at character 17"
"""Driver text that must never reach a client."""

CASES: list[tuple[Any, BaseException, type[SpaceCloudError], str]] = [
    (pg_map, asyncpg.exceptions.NumericValueOutOfRangeError(SECRET), InvalidQuery, "out of range"),
    (pg_map, asyncpg.exceptions.InvalidTextRepresentationError(SECRET), InvalidQuery, "wrong type"),
    (pg_map, asyncpg.exceptions.UntranslatableCharacterError(SECRET), InvalidQuery, "cannot store"),
    (pg_map, asyncpg.exceptions.ProgramLimitExceededError(SECRET), InvalidQuery, "too large"),
    (pg_map, asyncpg.exceptions.UndefinedTableError(SECRET), InternalError, "database error"),
    (pg_map, asyncpg.exceptions.SyntaxOrAccessError(SECRET), InternalError, "database error"),
    (pg_map, asyncpg.exceptions.QueryCanceledError(SECRET), Timeout, "cancelled"),
    (pg_map, asyncpg.exceptions.TooManyConnectionsError(SECRET), ServiceUnavailable, "too many connections"),
    (pg_map, asyncpg.exceptions.InvalidPasswordError(SECRET), ServiceUnavailable, "authentication failed"),
    (pg_map, ConnectionRefusedError(111, SECRET), ServiceUnavailable, "postgres unavailable: connection refused"),
    (pg_map, asyncpg.exceptions.ConnectionDoesNotExistError(SECRET), ServiceUnavailable, "connection lost"),
    (mysql_map, pymysql.err.DataError(1264, SECRET), InvalidQuery, "out of range"),
    (mysql_map, pymysql.err.OperationalError(1690, SECRET), InvalidQuery, "out of range"),
    (mysql_map, pymysql.err.IntegrityError(4025, SECRET), InvalidQuery, "check constraint"),
    (mysql_map, pymysql.err.OperationalError(1038, SECRET), InvalidQuery, "sort"),
    (mysql_map, pymysql.err.ProgrammingError(1064, SECRET), InternalError, "database error"),
    (mysql_map, pymysql.err.OperationalError(1969, SECRET), Timeout, "time limit"),
    (mysql_map, pymysql.err.OperationalError(2003, SECRET), ServiceUnavailable, "unavailable: connection refused"),
    (mysql_map, pymysql.err.OperationalError(1045, SECRET), ServiceUnavailable, "authentication failed"),
    (sqlite_map, sqlite3.OperationalError("integer overflow"), InvalidQuery, "out of range"),
    (sqlite_map, sqlite3.OperationalError("Expression tree is too large (maximum depth 1000)"), InvalidQuery,
     "too large"),
    (sqlite_map, sqlite3.OperationalError("database is locked"), ServiceUnavailable, "locked"),
    (sqlite_map, sqlite3.OperationalError(f"no such table: {SECRET}"), InternalError, "database error"),
    (sqlite_map, sqlite3.DatabaseError(f"malformed {SECRET}"), InternalError, "database error"),
    (mongo_map, pe.OperationFailure(SECRET, code=15), InvalidQuery, "out of range"),
    (mongo_map, pe.OperationFailure(SECRET, code=14), InvalidQuery, "wrong type"),
    (mongo_map, pe.OperationFailure(SECRET, code=8000), InternalError, "database error"),
    (mongo_map, pe.ExecutionTimeout(SECRET, code=50), Timeout, "time limit"),
    (mongo_map, pe.ServerSelectionTimeoutError(SECRET), ServiceUnavailable, "mongo unavailable: no server reachable"),
    (mongo_map, pe.AutoReconnect(SECRET), ServiceUnavailable, "connection lost"),
    (mongo_map, pe.WriteError(SECRET, code=121), InvalidQuery, "refused"),
]


@pytest.mark.parametrize(("map_error", "exc", "cls", "words"), CASES, ids=[f"{type(c[1]).__name__}" for c in CASES])
def test_driver_errors_are_told_in_our_words(
    map_error: Any, exc: BaseException, cls: type[SpaceCloudError], words: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="space_cloud.adapters"):
        mapped = map_error(exc)
    assert type(mapped) is cls or (cls is InvalidQuery and isinstance(mapped, InvalidQuery)), mapped
    assert words in mapped.message, mapped.message
    assert SECRET not in mapped.message and "relation-secret" not in mapped.message
    if cls is InternalError:
        assert mapped.message == "database error"
        assert SECRET in caplog.text or "malformed" in caplog.text, "the driver's text goes to the log"


async def test_values_a_database_cannot_store_are_400_and_store_nothing(backend: Backend) -> None:
    """PostgreSQL stores no NUL character in text or JSONB: a 400 of ours, not the driver's words."""
    col = await backend.seed([{"id": "a", "name": "ok"}])
    try:
        await backend.adapter.create(col, [backend.doc({"id": "b", "name": "nul\u0000inside"})])
    except InvalidQuery as exc:
        assert backend.adapter.kind == "postgres" and "cannot store" in exc.message, exc.message
        assert await backend.adapter.read(col, "count", {}, ReadOptions()) == 1
    else:
        got = await backend.adapter.read(col, "one", {backend.id: "b"}, ReadOptions())
        assert backend.norm(got)["name"] == "nul\u0000inside"
