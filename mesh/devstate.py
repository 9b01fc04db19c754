"""Where `space-cloud run` leaves its NATS URL so services on the same machine find it by themselves."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def state_path(home: str | None = None) -> Path:
    base = Path(home) if home else Path.home() / ".space-cloud"
    return base / "dev-server.json"


def write(info: dict[str, Any], *, home: str | None = None) -> Path:
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
    tmp.replace(path)
    return path


def read(*, home: str | None = None) -> dict[str, Any] | None:
    """The running development server's info, or None (no file, or its process is gone)."""
    path = state_path(home)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    pid = info.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return info


def remove(*, home: str | None = None) -> None:
    """Remove the file if this process wrote it."""
    path = state_path(home)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
