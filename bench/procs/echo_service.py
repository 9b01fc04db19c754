"""The Space Cloud side's service: an `sdk.Mesh` service `bench` with one function `echo`.

    python bench/procs/echo_service.py --nats URL --project bench
"""

from __future__ import annotations

from typing import Any

from sdk import Mesh

mesh = Mesh("bench", max_concurrency=256)


@mesh.function
async def echo(params: Any, auth: Any) -> Any:
    return params


if __name__ == "__main__":
    mesh.run()
