"""nx-27017, a MongoDB-wire-protocol server from PyPI (SQLite underneath), as a test server.

`NxMongo` runs nx-27017's own entry point under this interpreter on 127.0.0.1, port 0
(the port it got is read back from its log), with its own data directory, pid file and
log, so several test runs can share a machine. `nx_mongo_url` is the session fixture:
one server for the whole session, stopped at the end; when it cannot start, the tests
that need it are skipped, saying why and how to enable it.

For change streams (live queries over Mongo, see docs/database-adapters.md): nx-27017
answers `Collection.watch()` with insert/update/delete events, but a `getMore` on the
stream returns at once (it ignores `maxAwaitTimeMS`), so `async for` over a stream
spins; `next_changes()` polls with a pause instead and works on MongoDB too.
`watch_supported()` tells whether a server can open a per-collection stream at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import OperationFailure

DATABASE = "sc_test"
ENABLE = "install the test extra (pip install -e '.[test]', which pins nx-27017)"
_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
_LAUNCH = "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"


def _term_with_parent() -> None:
    """In the child (Linux): SIGTERM when pytest dies without stopping us, so no server is left behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class NxMongoError(RuntimeError):
    """nx-27017 is missing or did not start (the message says why)."""


class NxMongo:
    """One nx-27017 server process on 127.0.0.1, storing its files under `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = DATABASE) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 15.0) -> str:
        """Start the server and wait until it listens; the URL of `DATABASE` on it."""
        if importlib.util.find_spec("nx_27017") is None:
            raise NxMongoError(f"nx-27017 is not installed: {ENABLE}")
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NxMongoError(f"cannot create its directory {self.work_dir}: {exc}") from exc
        log, output = self.work_dir / "nx.log", self.work_dir / "output.log"
        cmd = [
            sys.executable, "-c", _LAUNCH,
            "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(self.work_dir / "data"),
            "--pid-file", str(self.work_dir / "nx.pid"),  # the default, /tmp/nx_27017.pid, is shared
            "--log-file", str(log),
        ]  # fmt: skip
        with output.open("wb") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                preexec_fn=_term_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(log.read_text(errors="replace")) if log.exists() else None
            if found:
                self.port = int(found.group(1))
                return self.url()
            if self._proc.poll() is not None:
                tail = output.read_text(errors="replace")[-1500:].strip()
                raise NxMongoError(f"nx-27017 exited with {self._proc.returncode}: {tail}")
            time.sleep(0.02)
        self.stop()
        raise NxMongoError(f"nx-27017 did not report a listening port within {timeout:.0f} s (see {log})")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> NxMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def nx_mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mongodb://127.0.0.1:<port>/sc_test` on an nx-27017 started for this session."""
    server = NxMongo(tmp_path_factory.mktemp("nx-27017"))
    try:
        url = server.start()
    except NxMongoError as exc:
        pytest.skip(f"nx-27017 (Mongo wire server) unavailable: {exc}; to enable: {ENABLE}")
    try:
        yield url
    finally:
        server.stop()


async def watch_supported(client: Any, database: str, collection: str) -> bool:
    """Whether `collection.watch()` opens on this server (pymongo async client).

    True on nx-27017 and on a replica set; False on a standalone mongod, which
    refuses change streams.
    """
    with contextlib.suppress(OperationFailure):
        async with await client[database][collection].watch(max_await_time_ms=1):
            return True
    return False


async def next_changes(stream: Any, count: int, *, timeout: float = 5.0, pause: float = 0.02) -> list[Any]:
    """The next `count` events of a pymongo async change stream (fewer if `timeout` passes first)."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        event = await stream.try_next()
        if event is None:
            await asyncio.sleep(pause)
        else:
            events.append(event)
    return events
