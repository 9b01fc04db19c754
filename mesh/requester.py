"""Request-reply over one long-lived reply subscription.

nats-py's `request()` draws random bytes and wraps each call in `asyncio.wait_for`; on the hot
path a counter on one wildcard inbox and a timer handle do the same job for less.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from .errors import MeshError, ServiceUnavailable, Timeout, from_code

ERROR_CODE_HEADER = "Nats-Service-Error-Code"
ERROR_HEADER = "Nats-Service-Error"
STATUS_HEADER = "Status"
NO_RESPONDERS = "503"


class Requester:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._prefix_len = 0
        self._pending: dict[str, asyncio.Future[Msg]] = {}
        self._counter = itertools.count(1)
        self._sub: Any = None

    async def start(self) -> None:
        if self._sub is not None:
            return
        self._prefix = self._nc.new_inbox() + "."
        self._prefix_len = len(self._prefix)
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._on_reply, pending_msgs_limit=-1)

    async def _on_reply(self, msg: Msg) -> None:
        fut = self._pending.pop(msg.subject[self._prefix_len :], None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float,
        *,
        what: str = "",
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """Send a request; return the reply payload or raise the `MeshError` the responder sent.

        No responder → `ServiceUnavailable` at once; no reply in `timeout` seconds → `Timeout`.
        """
        if self._sub is None:
            raise RuntimeError("Requester.start() was not called")
        token = str(next(self._counter))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Msg] = loop.create_future()
        self._pending[token] = fut
        timer = loop.call_later(timeout, _expire, fut)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
            msg = await fut
        except TimeoutError:
            raise Timeout(f"{what or subject} did not answer within {timeout:g}s") from None
        except MeshError:
            raise
        except Exception as exc:  # connection closed, draining, ...
            raise ServiceUnavailable(f"cannot reach {what or subject}: {exc or type(exc).__name__}") from None
        finally:
            timer.cancel()
            self._pending.pop(token, None)
        hdrs = msg.headers
        if hdrs:
            if hdrs.get(STATUS_HEADER) == NO_RESPONDERS:
                raise ServiceUnavailable(f"no instance of {what or subject} is running")
            code = hdrs.get(ERROR_CODE_HEADER)
            if code is not None:
                raise from_code(code, hdrs.get(ERROR_HEADER, "error"))
        return msg.data


def _expire(fut: asyncio.Future[Msg]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())
