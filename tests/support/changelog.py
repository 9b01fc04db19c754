"""Helpers for change log tests: what the log holds for a subject, SQL namespaces made and dropped
per test, and writes made straight into a database (not through the API)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomysql
import asyncpg
import pytest
from nats.aio.client import Client

from adapters.namespaces import pg_schema, prefixed_table
from gateway.live.log import ChangeLogReader
from mesh.changelog import LogSettings
from mesh.messages import ChangeEvent
from tests.support.databases import database_url

SQL_KINDS = ("sqlite", "postgres", "mysql")


def sql_params() -> list[Any]:
    marks = {"postgres": [pytest.mark.postgres], "mysql": [pytest.mark.mysql]}
    return [pytest.param(k, id=k, marks=marks.get(k, [])) for k in SQL_KINDS]


async def logged(nc: Client, subject: str) -> list[ChangeEvent]:
    """Every event the change log holds for `subject`, in order."""
    reader = ChangeLogReader(nc, LogSettings())
    state = await reader.state()
    return [e for page in [p async for p in reader.replay(subject, 0, state.last_seq)] for _, e in page]


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def sql_database(kind: str, tmp: Path, project: str | None = None) -> AsyncIterator[tuple[str, str]]:
    """(conn, project) of a SQL database for one test; the project's namespace is dropped afterwards."""
    project = project or "cl" + uuid.uuid4().hex[:10]
    if kind == "sqlite":
        yield str(tmp / f"{project}.db"), project
        return
    url = await database_url(f"{kind}-schemaless")
    try:
        yield url, project
    finally:
        await drop_namespace(kind, url, project)


async def drop_namespace(kind: str, url: str, project: str) -> None:
    if kind == "postgres":
        con = await asyncpg.connect(url)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{pg_schema(project)}" CASCADE')
        finally:
            await con.close()
    elif kind == "mysql":
        con = await mysql_connect(url)
        try:
            async with con.cursor() as cur:
                prefix = prefixed_table(project, "")
                await cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                  "AND TABLE_NAME LIKE %s", [prefix.replace("_", "\\_") + "%"])
                for (name,) in await cur.fetchall():
                    await cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        finally:
            con.close()


async def mysql_connect(url: str) -> Any:
    from urllib.parse import urlparse

    u = urlparse(url)
    return await aiomysql.connect(host=u.hostname or "127.0.0.1", port=u.port or 3306, user=u.username or "root",
                                  password=u.password or "", db=u.path.lstrip("/") or "test", autocommit=True)


def table(kind: str, project: str, col: str) -> str:
    """A collection's table as SQL written by hand names it."""
    if kind == "postgres":
        return f'"{pg_schema(project)}"."{col}"'
    if kind == "mysql":
        return f"`{prefixed_table(project, col)}`"
    return f'"{prefixed_table(project, col)}"'


async def outside(kind: str, conn: str, statements: list[tuple[str, list[Any]]]) -> None:
    """Run SQL as another program would: its own connection (SQLite: another process on the file).
    Placeholders are written `?` and adapted."""
    if kind == "postgres":
        con = await asyncpg.connect(conn)
        try:
            for sql, args in statements:
                parts = sql.split("?")
                text = parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))
                await con.execute(text, *args)
        finally:
            await con.close()
    elif kind == "mysql":
        con = await mysql_connect(conn)
        try:
            async with con.cursor() as cur:
                for sql, args in statements:
                    await cur.execute(sql.replace("?", "%s"), args)
        finally:
            con.close()
    else:
        script = ("import sqlite3, sys, json\n"
                  "db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA busy_timeout = 5000')\n"
                  "for sql, args in json.loads(sys.stdin.read()):\n"
                  "    db.execute(sql, args)\n"
                  "db.commit()\n")
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, conn, stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = await proc.communicate(json.dumps(statements).encode())
        assert proc.returncode == 0, err.decode()


def sqlite_rows(path: str, sql: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute(sql).fetchall())
    finally:
        db.close()
