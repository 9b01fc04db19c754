"""What `space-cloud run` leaves in the user's state directory (`~/.space-cloud`, or `SPACE_CLOUD_HOME`).

- `dev-server.json` (mode 0600): the embedded NATS's URL, the project, and the *service*
  password, so services on this machine find the server and connect by themselves. It records
  the writer's pid and process start time: a file left by a crash is recognised as stale (by
  `read`, and replaced by the next start), even when the pid has been reused.
- `nats/` (a `Workspace`): the embedded server's config, log and JetStream store, reused from one
  start to the next, with the port it had (tried first next time) and its pid. A lock held for the
  life of the run tells a live workspace from one a crash left; a second run at the same time
  takes `nats-1/`, and so on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("space_cloud")

MAX_WORKSPACES = 8


def state_dir(home: str | None = None) -> Path:
    return Path(home) if home else Path.home() / ".space-cloud"


def state_path(home: str | None = None) -> Path:
    return state_dir(home) / "dev-server.json"


def process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot, Linux), None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def alive(pid: int, started: str | None = None) -> bool:
    """Is `pid` running, and (when `started` is given and can be checked) the same process as then?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is not None:
        now = process_start(pid)
        if now is not None and now != started:
            return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def write(info: dict[str, Any], *, home: str | None = None) -> Path:
    """Publish the running server's info (readable by this user only)."""
    path = state_path(home)
    _private_dir(path.parent)
    pid = os.getpid()
    tmp = path.with_name(f".dev-server.{pid}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(json.dumps({**info, "pid": pid, "started": process_start(pid)}))
    tmp.replace(path)
    return path


def _load(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def read(*, home: str | None = None) -> dict[str, Any] | None:
    """The running development server's info, or None (no file, or the process that wrote it is gone)."""
    info = _load(state_path(home))
    if info is None:
        return None
    pid = info.get("pid")
    started = info.get("started")
    if not isinstance(pid, int) or not alive(pid, started if isinstance(started, str) else None):
        return None
    return info


def stale(*, home: str | None = None) -> dict[str, Any] | None:
    """A dev-state file whose writer is gone (a crash), or None."""
    info = _load(state_path(home))
    if info is None or read(home=home) is not None:
        return None
    return info


def remove(*, home: str | None = None) -> None:
    """Remove the file if this process wrote it."""
    path = state_path(home)
    info = _load(path)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


class Workspace:
    """The embedded server's directory, held (locked) by one run; see the module docstring."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @property
    def _server_file(self) -> Path:
        return self.path / "server.json"

    def remembered_port(self) -> int | None:
        info = _load(self._server_file) or {}
        port = info.get("port")
        return port if isinstance(port, int) and 0 < port < 65536 else None

    def remember(self, *, port: int, nats_pid: int | None) -> None:
        self._server_file.write_text(json.dumps({"port": port, "nats_pid": nats_pid,
                                                 "nats_started": process_start(nats_pid) if nats_pid else None}))

    def forget_server(self) -> None:
        """The server stopped cleanly: keep its port for next time, drop its pid."""
        port = self.remembered_port()
        if port is not None:
            self._server_file.write_text(json.dumps({"port": port}))

    def end_leftover_server(self, *, grace: float = 5.0) -> None:
        """A nats-server a crashed run left on this workspace (it is told to stop when its parent dies;
        this waits for that, then makes sure): nothing else may use its store."""
        info = _load(self._server_file) or {}
        pid, started = info.get("nats_pid"), info.get("nats_started")
        if not isinstance(pid, int) or not isinstance(started, str) or not alive(pid, started):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"nats-server" not in cmdline or str(self.path).encode() not in cmdline:
            return
        log.warning("waiting for the nats-server (pid %d) a previous run left to stop", pid)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not alive(pid, started):
                    return
                time.sleep(0.05)

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock


def claim_workspace(home: str | None = None) -> Workspace:
    """The first workspace no live run holds (`nats/`, then `nats-1/`, ...), locked for this process."""
    base = state_dir(home)
    _private_dir(base)
    for i in range(MAX_WORKSPACES):
        path = base / ("nats" if i == 0 else f"nats-{i}")
        _private_dir(path)
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        workspace = Workspace(path, fd)
        workspace.end_leftover_server()
        return workspace
    raise RuntimeError(f"{MAX_WORKSPACES} development servers already run from {base}")
