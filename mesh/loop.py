"""Running a process's main coroutine on uvloop when it is installed (uvicorn[standard] brings it)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run`, on uvloop where available: every NATS and HTTP hop costs less on it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)
