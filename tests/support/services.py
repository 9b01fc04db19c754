"""A service process for tests: `python -m tests.support.services --nats URL --project P`.

Functions: `whoami` (the instance id), `echo`, `slow` (sleeps params.seconds then answers).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from sdk import Mesh

mesh = Mesh("proc", max_concurrency=16, drain_timeout=10)


@mesh.function
async def whoami(params: Any, auth: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}


@mesh.function
def echo(params: Any) -> Any:
    return params


@mesh.function
async def slow(params: dict[str, Any], auth: Any) -> dict[str, Any]:
    await asyncio.sleep(float(params.get("seconds", 1)))
    return {"pid": os.getpid(), "slept": params.get("seconds", 1)}


if __name__ == "__main__":
    mesh.run()
