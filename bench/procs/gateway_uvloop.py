"""`space-cloud` with the server-side changes this benchmark recommends, to measure them before they
are made in gateway/cli.py / gateway/runner.py (`bench/run --gateway-uvloop [--gateway-one-write]`):

- uvloop as the event loop (cli.py runs `asyncio.run`, so uvicorn's `loop=` setting never applies);
- with BENCH_ONE_WRITE=1: a response's status line + headers go out in the same socket write as its
  body (uvicorn writes them on `http.response.start`, then the body separately: two syscalls and two
  wake-ups of the client per response). Done here by holding the first write of each request cycle.

    python bench/procs/gateway_uvloop.py run --nats URL --config FILE ...
"""

from __future__ import annotations

import os
import sys
from typing import Any

import uvloop

from gateway.cli import main


class _OneWrite:
    """Wraps a transport for one request/response cycle: the header write waits for the body write."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is None:
            self._held = bytes(data)
            return
        if self._held:
            data = self._held + data
            self._held = b""
        self._transport.write(data)

    def close(self) -> None:
        if self._held:
            self._transport.write(self._held)
            self._held = b""
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _patch_one_write() -> None:
    from uvicorn.protocols.http import httptools_impl

    cycle = httptools_impl.RequestResponseCycle
    original = cycle.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        # POST only (the hot routes): a HEAD response has no body write to carry the headers
        if not self.waiting_for_100_continue and self.scope["method"] == "POST":
            self.transport = _OneWrite(self.transport)

    cycle.__init__ = init  # type: ignore[method-assign]


if __name__ == "__main__":
    uvloop.install()
    if os.environ.get("BENCH_ONE_WRITE") == "1":
        _patch_one_write()
    sys.exit(main(sys.argv[1:]))
