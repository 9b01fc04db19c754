"""`examples/todo/client.py` against the todo example's own config (on SQLite) with its service running."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from sdk.client import API, cond

from .conftest import ROOT, running_server

EXAMPLE = ROOT / "examples" / "todo"


def example_config(tmp: Path) -> dict[str, Any]:
    """The example's config as shipped, on a database file in `tmp`, without the static page."""
    config: dict[str, Any] = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config.pop("x-todo-collections", None)
    modules = config["projects"][0]["modules"]
    modules["crud"]["db"]["conn"] = str(tmp / "todo.db")
    modules.pop("static", None)
    return config


async def run_client(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "examples.todo.client", "--url", url, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(subprocess.run, cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=60)


async def test_the_todo_client_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    email, password = f"py-{uuid.uuid4().hex[:8]}@example.com", "a-password"
    with running_server(example_config(tmp_path), tmp_path) as (url, home):
        # without the service: everything but the summary works, and the script says why
        r = await run_client(url, "--email", email, "--password", password, "--add", "buy milk", "--follow", "0")
        assert r.returncode == 0, r.stderr
        assert f"signed up as {email}" in r.stdout and "added 'buy milk'" in r.stdout
        assert "  [ ] buy milk" in r.stdout and "the service is not running" in r.stdout

        monkeypatch.setenv("SPACE_CLOUD_HOME", str(home))  # the service finds the server's NATS
        monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
        from examples.todo.service import mesh

        async with mesh:
            r = await run_client(url, "--email", email, "--password", password, "--add", "write docs",
                                 "--follow", "2")
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

        r = await run_client(url, "--email", email, "--password", "wrong", "--follow", "0")
        assert r.returncode == 1 and "error 401: Given credentials are not correct" in r.stderr
