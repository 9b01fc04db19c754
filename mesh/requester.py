"""Request-reply over one long-lived reply subscription.

nats-py's `request()` draws random bytes and wraps each call in `asyncio.wait_for`; on the hot
path a counter on one wildcard inbox does the same job for less. Timeouts are not one timer per
request either (under load the event loop's timer heap then holds every pending and cancelled
handle: pushing into it was ~5% of the gateway's time): requests are put in buckets by deadline,
`TICK` seconds wide, with one timer per bucket; a request times out at most `TICK` late.

Replies are routed from nats-py's read loop itself: a subscription made with `future=` hands each
message to that object's `set_result` at once, where a callback subscription would queue it for a
task of its own (one more event-loop turn per reply). The router is an object with the two methods
nats-py calls; `start()` checks once that replies really arrive that way and otherwise falls back
to an ordinary callback subscription.

Every request carries its budget (`Sc-Timeout`, from `timeout`) and the current request id
(`Sc-Request-Id`, from `mesh.context`), so the responder can drop work its caller gave up on and log
under the same id.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from common.errors import NoInstance, ServiceUnavailable, SpaceCloudError, Timeout, from_code

from .context import REQUEST_ID
from .messages import ERROR_CODE_HEADER, ERROR_HEADER, request_headers

STATUS_HEADER = "Status"
NO_RESPONDERS = "503"

TICK = 0.01
"""Width of a timeout bucket, in seconds."""


class Requester:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._prefix_len = 0
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._buckets: dict[int, list[str]] = {}
        self._counter = itertools.count(1)
        self._sub: Any = None

    async def start(self) -> None:
        if self._sub is not None:
            return
        self._prefix = self._nc.new_inbox() + "."
        self._prefix_len = len(self._prefix)
        self._sub = await self._nc.subscribe(self._prefix + "*", future=_Router(self._route))  # type: ignore[arg-type]
        if not await self._routes_directly():
            await self._sub.unsubscribe()
            self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply, pending_msgs_limit=-1)

    async def _routes_directly(self) -> bool:
        """Does a message on the reply inbox reach the router? (a guard against nats-py changes)"""
        loop = asyncio.get_running_loop()
        probe: asyncio.Future[Msg] = loop.create_future()
        self._pending["probe"] = probe
        try:
            await self._nc.publish(self._prefix + "probe", b"")
            await asyncio.wait_for(probe, 2)
            return True
        except Exception:
            return False
        finally:
            self._pending.pop("probe", None)

    def _route(self, msg: Msg) -> None:
        fut = self._pending.pop(msg.subject[self._prefix_len :], None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def _on_reply(self, msg: Msg) -> None:
        self._route(msg)

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,
        *,
        what: str = "",
        detail: str = "",
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Send a request; return the reply payload or raise the `SpaceCloudError` the responder sent.

        No responder → `ServiceUnavailable` at once; no reply in `timeout` seconds → `Timeout`. Errors
        name `what` was asked, and `detail` in parentheses (e.g. which database alias).
        """
        if self._sub is None:
            raise RuntimeError("Requester.start() was not called")
        about = f" ({detail})" if detail else ""
        if not self._nc.is_connected:
            raise ServiceUnavailable(f"cannot reach {what or subject}{about}: not connected to NATS (reconnecting)")
        if timeout <= 0:
            raise Timeout(f"no time left to ask {what or subject}{about}: the request's deadline has passed")
        hdrs = request_headers(timeout, REQUEST_ID.get())
        if headers:
            hdrs.update(headers)
        token = str(next(self._counter))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Msg] = loop.create_future()
        self._pending[token] = fut
        tick = math.ceil((loop.time() + timeout) / TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = []
            loop.call_at(tick * TICK, self._expire, tick)
        bucket.append(token)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=hdrs)
            msg = await fut
        except TimeoutError:
            raise Timeout(f"{what or subject} did not answer within {timeout:.3g}s{about}") from None
        except SpaceCloudError:
            raise
        except Exception as exc:  # connection closed, draining, ...
            raise ServiceUnavailable(f"cannot reach {what or subject}{about}: {exc or type(exc).__name__}") from None
        finally:
            self._pending.pop(token, None)
        reply = msg.headers
        if reply:
            if reply.get(STATUS_HEADER) == NO_RESPONDERS:
                raise NoInstance(f"no instance of {what or subject} is running{about}")
            code = reply.get(ERROR_CODE_HEADER)
            if code is not None:
                raise from_code(code, reply.get(ERROR_HEADER, "error"))
        return msg.data

    def _expire(self, tick: int) -> None:
        pending = self._pending
        for token in self._buckets.pop(tick, ()):
            fut = pending.get(token)
            if fut is not None and not fut.done():
                fut.set_exception(TimeoutError())


class _Router:
    """What nats-py's read loop calls for a `future=` subscription: `cancelled()`, then `set_result(msg)`."""

    __slots__ = ("_route",)

    def __init__(self, route: Callable[[Msg], None]) -> None:
        self._route = route

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return False

    def set_result(self, msg: Msg) -> None:
        self._route(msg)
