"""One database of one project, isolated from every other: `Database`.

Each (project, alias) has its own adapter, connected on its own (no lock shared with other aliases),
its own `Bulkhead` (how many requests run at once and wait, never borrowed from another alias) and
its own `Breaker`. A connect that fails or times out opens the breaker at once: requests are then
answered 503 without trying, saying why and since when, and a single request probes again after a
back-off (1 s, doubling to 30 s). Repeated unavailable/timeout answers of a connected database open
it too, so a database that stopped answering costs its callers nothing but a fast 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from adapters.base import Adapter
from adapters.registry import create_adapter
from common.errors import ServiceUnavailable, SpaceCloudError, Timeout
from mesh.limits import CLOSED, Breaker, Bulkhead
from worker.spec import DatabaseSpec

log = logging.getLogger("space_cloud.worker")


def _reason(exc: BaseException, connect_timeout: float) -> str:
    """Why a connect failed, in words (never empty: some drivers' timeouts carry no text)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return f"connecting did not complete within {connect_timeout:.3g}s"
        cause = cause.__cause__
    if isinstance(exc, SpaceCloudError):
        text = exc.message.rstrip()
        if text.endswith(":") and exc.__cause__ is not None:
            text = f"{text} {type(exc.__cause__).__name__}"
        return text
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class Database:
    def __init__(self, spec: DatabaseSpec, *, limit: int, queue: int, connect_timeout: float) -> None:
        self.spec = spec
        self.label = f"{spec.type} alias {spec.alias} (project {spec.project})"
        self.bulkhead = Bulkhead(limit, queue)
        self.breaker = Breaker(threshold=5, cooldown=1.0, max_cooldown=30.0)
        self.connect_timeout = connect_timeout
        self.adapter: Adapter | None = None
        self.connected_at = 0.0
        self._connecting: asyncio.Task[Adapter] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> str:
        """idle (never asked) | connecting | connected | failing (breaker open or probing)."""
        if self.breaker.state != CLOSED:
            return "failing"
        if self.adapter is not None:
            return "connected"
        return "connecting" if self._connecting is not None else "idle"

    def unavailable(self) -> ServiceUnavailable:
        return ServiceUnavailable(f"{self.label} is unavailable: {self.breaker.describe()}")

    async def get(self, deadline: float | None) -> Adapter:
        """The connected adapter; 503 at once while the breaker is open; waits for a connect in progress
        (until `deadline`)."""
        adapter = self.adapter
        if adapter is not None and self.breaker.state == CLOSED:
            return adapter
        if not self.breaker.allow():
            raise self.unavailable()
        if adapter is not None:
            return adapter  # the probe of a connected database that kept failing
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.get_running_loop().create_task(self._connect())
            task.add_done_callback(_retrieved)  # its waiters may all have given up: no "never retrieved"
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, _ = await asyncio.wait({task}, timeout=timeout)  # never cancels the shared connect
        if not done:
            raise Timeout(f"{self.label} is still connecting; the request's deadline passed first")
        return task.result()

    async def _connect(self) -> Adapter:
        spec = self.spec
        # every collection's config (typed `fields`, an explicit `table:`); the Mongo database as configured
        # (None: the adapter derives one from the namespace, hashed when the project id cannot be one)
        adapter = create_adapter(spec.type, spec.conn, namespace=spec.project, collections=spec.collections,
                                 database=spec.database)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await adapter.connect()
        except Exception as exc:
            reason = _reason(exc, self.connect_timeout)
            self.breaker.trip(reason)
            log.warning("%s: connect failed: %s (next try in %.1fs)", self.label, reason,
                        max(0.0, self.breaker.retry_at - time.monotonic()))
            self._close_later(adapter)
            raise ServiceUnavailable(f"{self.label} is unavailable: {reason}") from None
        finally:
            self._connecting = None
        self.adapter = adapter
        self.connected_at = time.time()
        self.breaker.success()
        log.info("%s: connected", self.label)
        return adapter

    def outcome(self, exc: BaseException | None) -> None:
        """Tell the breaker how a request went: unavailable/timeout count as failures, client errors do not."""
        if exc is None:
            if self.breaker.failures or self.breaker.state != CLOSED:
                self.breaker.success()
        elif isinstance(exc, ServiceUnavailable | Timeout):
            self.breaker.failure(exc.message if isinstance(exc, SpaceCloudError) else type(exc).__name__)

    def _close_later(self, adapter: Adapter) -> None:
        async def close() -> None:
            with contextlib.suppress(Exception):
                await adapter.close()

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        task, self._connecting = self._connecting, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        adapter, self.adapter = self.adapter, None
        if adapter is not None:
            with contextlib.suppress(Exception):  # a pool with a stuck connection may never close cleanly
                await asyncio.wait_for(adapter.close(), 5)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=5)

    def health(self) -> dict[str, Any]:
        """What `$SRV.STATS` tells about this database (the gateway's health endpoint reads it)."""
        out: dict[str, Any] = {
            "project": self.spec.project, "alias": self.spec.alias, "type": self.spec.type, "state": self.state,
            "running": self.bulkhead.running, "waiting": self.bulkhead.waiting,
        }
        if self.breaker.state != CLOSED:
            out["since"] = self.breaker.opened_at
            out["reason"] = self.breaker.last_error
        elif self.adapter is not None:
            out["since"] = self.connected_at
        return out
