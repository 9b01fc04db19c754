"""Fault tolerance of the gateway's function calls: per service a bulkhead and a breaker, and retries
of functions their service declares idempotent.

- **Bulkhead**: at most `gateway.serviceConcurrency` calls in flight from this gateway to one service;
  one more is refused at once (503), so a slow service cannot take every connection of the gateway.
- **Breaker**: 18 failures (500, 503 from the service, 504) among the last 20 calls open it: calls then
  fail fast (503 saying since when and the last error) until a probe after a cooldown (1 s, doubling
  to 10 s) succeeds. While any instance is healthy, successes keep the share of failures well below
  that (one bad instance of two fails about half the calls), so only a service whose instances all
  fail trips it. "No instance" does not count: it is already immediate and exact.
- **Retries**: a function advertised `idempotent` (endpoint metadata, learnt from `$SRV.INFO` by the
  `Directory`) is tried again after a 500 or 503, up to `gateway.functionRetries` times, with a short
  back-off and within the caller's deadline. Any call is retried once after "no instance" (NATS
  no-responders: it reached nobody), which covers an instance restarting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client

from mesh.discovery import gather
from mesh.limits import Breaker
from mesh.service import IDEMPOTENT

log = logging.getLogger("space_cloud.calls")

BREAKER_WINDOW = 20
BREAKER_FAILURES = 18
BACKOFF = (0.025, 0.1, 0.25)
"""Seconds before the first, second, third retry."""


class ServiceGuard:
    """One service of one project, as this gateway calls it."""

    __slots__ = ("breaker", "label", "limit", "running", "stats")

    def __init__(self, project: str, service: str, limit: int) -> None:
        self.label = f"service {service!r}"
        self.limit = limit
        self.running = 0
        self.breaker = Breaker(threshold=BREAKER_FAILURES, window=BREAKER_WINDOW, cooldown=1.0, max_cooldown=10.0)
        self.stats: dict[str, Any] = {}
        """Per function: its `CallStats` (gateway.metrics), resolved once."""


class Directory:
    """What discovery tells the gateway: which functions are idempotent, how many instances each service
    has; refreshed in the background every `interval` seconds (one `$SRV.INFO` round)."""

    def __init__(self, *, interval: float = 5.0, window: float = 0.25) -> None:
        self.interval = interval
        self.window = window
        self.idempotent: frozenset[tuple[str, str, str]] = frozenset()
        self.instances: dict[tuple[str, str], int] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self, nc: Client) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(nc))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def refresh(self, nc: Client) -> None:
        """One round of discovery now."""
        self.update(await gather(nc, "$SRV.INFO", self.window))

    async def _loop(self, nc: Client) -> None:
        while True:
            try:
                if nc.is_connected:
                    await self.refresh(nc)
            except Exception:
                log.debug("service discovery round failed", exc_info=True)
            await asyncio.sleep(self.interval)

    def update(self, infos: list[dict[str, Any]]) -> None:
        idempotent: set[tuple[str, str, str]] = set()
        instances: dict[tuple[str, str], int] = {}
        for info in infos:
            project = (info.get("metadata") or {}).get("project")
            name = info.get("name")
            if not isinstance(project, str) or not isinstance(name, str):
                continue
            instances[(project, name)] = instances.get((project, name), 0) + 1
            for ep in info.get("endpoints") or []:
                meta = ep.get("metadata") or {}
                if meta.get(IDEMPOTENT) == "true" and isinstance(ep.get("name"), str):
                    idempotent.add((project, name, ep["name"]))
        self.idempotent = frozenset(idempotent)
        self.instances = instances
