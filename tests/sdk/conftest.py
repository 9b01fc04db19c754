"""One real server for the app-client tests: `space-cloud run` in a subprocess, on every database.

The CLI starts with its embedded NATS and db worker and a config (written per session, with a
unique project id, so the shared PostgreSQL/MariaDB never see another run's tables) that serves
one alias per database: `sqlite`, `sql-postgres`, `sql-mysql` and `mongo` (the in-process fake).
PostgreSQL and MariaDB are probed first; an unreachable one is left out of the config and its
tests are skipped, saying which environment variable points at a reachable server.

The tests speak only the wire protocol (through `sdk.client`) and import nothing from gateway/.
`SPACE_CLOUD_TEST_SERVER_ROOT` runs the server from another checkout (e.g. while this one is being
restructured); by default it is this repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import yaml

from sdk import Mesh
from sdk.client import API

ROOT = Path(__file__).resolve().parents[2]
PG_ENV, MYSQL_ENV = "SPACE_CLOUD_TEST_PG_URL", "SPACE_CLOUD_TEST_MYSQL_URL"
PG_DEFAULTS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
MYSQL_DEFAULT = "mysql://root@127.0.0.1:3306/test"
SECRET = "sdk-client-tests-secret-0123456789-abcdefghij"

DATABASES = ("sqlite", "postgres", "mysql", "mongo")
ALIASES = {"sqlite": "sqlite", "postgres": "sql-postgres", "mysql": "sql-mysql", "mongo": "mongo"}
ALLOW = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique(prefix: str = "c") -> str:
    """A collection name no other run uses."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# -- which databases are reachable -------------------------------------------------------------

async def _pg_ok(url: str) -> bool:
    import asyncpg

    try:
        conn = await asyncio.wait_for(asyncpg.connect(url), 5)
    except Exception:
        return False
    await conn.close()
    return True


async def _mysql_ok(url: str) -> bool:
    import aiomysql

    u = urlsplit(url)
    try:
        conn = await asyncio.wait_for(aiomysql.connect(
            host=u.hostname or "127.0.0.1", port=u.port or 3306, user=unquote(u.username or "root"),
            password=unquote(u.password or ""), db=u.path.lstrip("/") or "test"), 5)
    except Exception:
        return False
    conn.close()
    return True


def _probe(db: str) -> tuple[str | None, str]:
    """(a reachable URL or None, why not) for postgres/mysql; run in a thread of its own."""
    if db == "postgres":
        candidates = (os.environ[PG_ENV],) if os.environ.get(PG_ENV) else PG_DEFAULTS
        check, env = _pg_ok, PG_ENV
    else:
        candidates = (os.environ.get(MYSQL_ENV) or MYSQL_DEFAULT,)
        check, env = _mysql_ok, MYSQL_ENV
    found: list[str] = []

    def run() -> None:
        async def main() -> None:
            for url in candidates:
                if await check(url):
                    found.append(url)
                    return

        asyncio.run(main())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if found:
        return found[0], ""
    return None, f"{db} unreachable at {candidates[0]}: start it or set {env} to a reachable URL"


# -- the server --------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    project: str
    home: Path
    aliases: dict[str, str]
    """database → alias, for the databases this server serves."""
    missing: dict[str, str] = field(default_factory=dict)
    """database → why it is not served (its tests skip)."""
    guarded: str = ""
    """A collection with real rules: create authenticated, read own (`userId`), update deny, no delete rule."""

    def nats_env(self) -> dict[str, str]:
        """Environment for a service that finds this server's NATS by itself."""
        return {"SPACE_CLOUD_HOME": str(self.home)}


def _config(project: str, conns: dict[str, str], guarded: str) -> dict[str, Any]:
    own = {"rule": "match", "eval": "==", "type": "string", "f1": "args.auth.id", "f2": "args.find.userId"}
    collections = {
        "default": {"rules": ALLOW},
        guarded: {"rules": {"create": {"rule": "authenticated"}, "read": own, "update": {"rule": "deny"}}},
        "users": {"rules": {"read": {"rule": "authenticated"}, "update": {"rule": "authenticated"}}},
    }
    crud = {ALIASES[db]: {"type": db, "conn": conn, "collections": collections} for db, conn in conns.items()}
    functions = {
        "enabled": True,
        "services": {
            "pysvc": {"functions": {"default": {"rule": {"rule": "allow"}},
                                    "whoami": {"rule": {"rule": "authenticated"}},
                                    "secret": {"rule": {"rule": "deny"}}}},
            "ghost": {"functions": {"default": {"rule": {"rule": "allow"}}}},
        },
    }
    # revealUnknownEmails: an unknown email is a 404 as in Space Cloud (by default the 401 of a wrong password)
    email = {"enabled": True, "signupRoles": ["user", "editor"], "revealUnknownEmails": True}
    return {"projects": [{"id": project, "secret": SECRET, "modules": {
        "crud": crud, "auth": {"email": email}, "functions": functions}}]}


def _die_with_parent() -> None:
    """In the child (Linux): SIGTERM when the test run dies without stopping the server."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"{url}/v1/api/health").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running_server(config: dict[str, Any], tmp: Path) -> Iterator[tuple[str, Path]]:
    """`space-cloud run` with `config` (written to `tmp`), its embedded NATS and db worker, on a free
    port; yields (its URL, its SPACE_CLOUD_HOME); stopped with SIGTERM at the end."""
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    home = tmp / ".space-cloud"
    server_root = Path(os.environ.get("SPACE_CLOUD_TEST_SERVER_ROOT") or ROOT)
    env = {**os.environ, "HOME": str(tmp), "SPACE_CLOUD_HOME": str(home), "PYTHONPATH": str(server_root)}
    env.pop("SPACE_CLOUD_NATS", None)
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", str(tmp / "config.yaml"),
             "--port", str(port), "--host", "127.0.0.1"],
            cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, home
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sdk-server")
    project = "sdk" + uuid.uuid4().hex[:10]
    conns = {"sqlite": str(tmp / "sdk.db"), "mongo": f"mongomock://{project}"}
    missing: dict[str, str] = {}
    for db in ("postgres", "mysql"):
        url, why = _probe(db)
        if url is None:
            missing[db] = why
        else:
            conns[db] = url
    guarded = unique("guarded")
    with running_server(_config(project, conns, guarded), tmp) as (url, home):
        yield Server(url, project, home, {db: ALIASES[db] for db in conns}, missing, guarded)


def example_config(tmp: Path) -> dict[str, Any]:
    """The todo example's config as shipped, on a database file in `tmp`, without the static page."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "todo" / "config.yaml").read_text())
    config.pop("x-todo-collections", None)
    modules = config["projects"][0]["modules"]
    modules["crud"]["db"]["conn"] = str(tmp / "todo.db")
    modules.pop("static", None)
    return config


@pytest.fixture(scope="session")
def todo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server with the todo example's config: (URL, SPACE_CLOUD_HOME for its service)."""
    tmp = tmp_path_factory.mktemp("todo-server")
    with running_server(example_config(tmp), tmp) as running:
        yield running


@pytest.fixture
async def todo_service(todo_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """The example's `todo` service (examples/todo/service.py), in this process, on the todo server's NATS."""
    monkeypatch.setenv("SPACE_CLOUD_HOME", str(todo_server[1]))
    monkeypatch.delenv("SPACE_CLOUD_NATS", raising=False)
    from examples.todo.service import mesh

    async with running_service(mesh):
        yield


@contextlib.asynccontextmanager
async def running_service(mesh: Mesh, timeout: float = 30.0) -> AsyncIterator[Mesh]:
    """A started service; one that cannot reach NATS fails the test in `timeout` seconds instead of hanging."""
    try:
        async with asyncio.timeout(timeout):
            await mesh.start()
    except TimeoutError:
        raise AssertionError(f"service {mesh.service} did not start within {timeout:g} s") from None
    try:
        yield mesh
    finally:
        async with asyncio.timeout(timeout):
            await mesh.stop()


@dataclass
class Target:
    """One database of the server, as a test sees it."""

    db: str
    alias: str
    id: str
    """The id field: `_id` on Mongo, `id` on SQL."""


def database_params() -> list[Any]:
    marks = {"postgres": [pytest.mark.postgres], "mysql": [pytest.mark.mysql]}
    return [pytest.param(db, id=db, marks=marks.get(db, [])) for db in DATABASES]


@pytest.fixture(params=database_params())
def target(request: pytest.FixtureRequest, server: Server) -> Target:
    db = str(request.param)
    if db not in server.aliases:
        pytest.skip(server.missing.get(db, f"{db} is not served"))
    return Target(db, server.aliases[db], "_id" if db == "mongo" else "id")


@pytest.fixture
async def api(server: Server) -> AsyncIterator[API]:
    """A client with quick reconnects (the defaults are 0.5 s doubling to 10 s)."""
    async with API(server.project, server.url, reconnect_min=0.05, reconnect_max=0.5) as client:
        yield client


async def next_snapshot(it: Any, timeout: float = 10.0) -> Any:
    """The next item of an async iterator, or fail after `timeout` seconds."""
    return await asyncio.wait_for(it.__anext__(), timeout)
