"""`python -m examples.todo`: the server (with this example's config) and the todo service, together.

Starts `space-cloud run --config examples/todo/config.yaml`, waits for it, then starts
`examples/todo/service.py` on the server's embedded NATS; Ctrl-C (or SIGTERM) stops both. Their
development state lives in `examples/todo/.space-cloud/`, so another `space-cloud run` on the same
machine does not get in the way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.todo", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(HERE / "config.yaml"), help="config file (default: the example's)")
    p.add_argument("--port", type=int, default=4122, help="gateway port (default 4122)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--project", default="todo-app", help="project the service joins (default todo-app)")
    return p


def _wait_ready(server: subprocess.Popen[bytes], port: int, state: Path, stop: Callable[[], bool],
                timeout: float = 60.0) -> str:
    """The embedded NATS URL once the gateway answers; raises if the server exits first or on Ctrl-C."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/v1/api/health"
    while time.monotonic() < deadline:
        if stop():
            raise SystemExit(130)
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            info = json.loads(state.read_text())
            with urllib.request.urlopen(url, timeout=1) as res:
                if res.status == 200 and info.get("pid") == server.pid:
                    return str(info["nats_url"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not start within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in 15 s; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    home = Path(os.environ.get("SPACE_CLOUD_HOME") or Path(args.config).resolve().parent / ".space-cloud")
    env = {**os.environ, "SPACE_CLOUD_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    state = home / "dev-server.json"
    stopping = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = subprocess.Popen(  # noqa: S603 (our own fixed command line)
        [sys.executable, "-m", "gateway.cli", "run", "--config", args.config, "--port", str(args.port),
         "--host", args.host],
        env=env, cwd=ROOT, start_new_session=True,
    )
    service: subprocess.Popen[bytes] | None = None
    try:
        _wait_ready(server, args.port, state, lambda: stopping)
        # no --nats: the service finds the dev server (URL and service credentials) in SPACE_CLOUD_HOME
        service = subprocess.Popen(  # noqa: S603 (our own fixed command line)
            [sys.executable, "-m", "examples.todo.service", "--project", args.project],
            env=env, cwd=ROOT, start_new_session=True,
        )
        shown = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
        print(f"\n  todo app: http://{shown}:{args.port}/   (Ctrl-C stops the server and the service)\n", flush=True)
        while not stopping:
            if server.poll() is not None:
                print(f"the server exited with code {server.returncode}", file=sys.stderr)
                return 1
            if service.poll() is not None:
                print(f"the service exited with code {service.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        with contextlib.suppress(Exception):
            if service is not None:
                _stop(service, "the service")
        _stop(server, "the server")


if __name__ == "__main__":
    sys.exit(main())
