"""`examples/todo/client.py` against the todo example's own config (on SQLite) with its service running."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sdk import Forbidden
from sdk.client import API, cond

from .conftest import ROOT


async def run_client(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "examples.todo.client", "--url", url, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(subprocess.run, cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=60)


async def test_the_script_without_the_service(todo_server: tuple[str, Path]) -> None:
    url = todo_server[0]
    email, password = f"py-{uuid.uuid4().hex[:8]}@example.com", "a-password"
    r = await run_client(url, "--email", email, "--password", password, "--add", "buy milk", "--follow", "0")
    assert r.returncode == 0, r.stderr
    assert f"signed up as {email}" in r.stdout and "added 'buy milk'" in r.stdout
    assert "  [ ] buy milk" in r.stdout and "the service is not running" in r.stdout, r.stdout
    r = await run_client(url, "--email", email, "--password", "wrong", "--follow", "0")
    assert r.returncode == 1 and "error 401: Given credentials are not correct" in r.stderr


async def test_the_script_with_the_service(todo_server: tuple[str, Path], todo_service: None) -> None:
    url = todo_server[0]
    email, password = f"py-{uuid.uuid4().hex[:8]}@example.com", "a-password"
    r = await run_client(url, "--email", email, "--password", password, "--add", "buy milk", "--follow", "0")
    assert r.returncode == 0, r.stderr
    r = await run_client(url, "--email", email, "--password", password, "--add", "write docs", "--follow", "2")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"signed in as {email}" in out and "my todos (2):" in out
    assert "live query: 2 todos to start with" in out
    assert "live: update 'buy milk' (2 todos)" in out, out  # the script ticked off the oldest
    assert "summary: 1 to go, 1 done (50%). (1/2 done)" in out, out

    # what the script did is in the database, and only its owner sees it
    async with API("todo-app", url) as api:
        db = api.db("db")
        me = await db.sign_in(email, password)
        api.set_token(me.token)
        todos = await db.get("todos").where(cond("userId", "==", me.user_id)).sort("createdAt")
        assert [(t["text"], t["done"]) for t in todos] == [("buy milk", True), ("write docs", False)]
        with pytest.raises(Forbidden):
            await db.get("todos").where(cond("userId", "==", "someone-else"))
