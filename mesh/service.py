"""A NATS micro service instance: endpoints in a queue group, requests handled concurrently, true stats.

It speaks the micro protocol (`$SRV.PING/INFO/STATS`, the schemas of `nats.micro`'s public
dataclasses), so standard NATS tooling discovers and measures it. It does not wrap `nats.micro.Service`:
nats-py runs one subscription's callbacks one after another, so a micro endpoint either handles one
request at a time or (handing work to a task) reports about zero processing time and no errors.
Here each request is its own task under a cap, and its time and outcome are measured around the
real work.

Admission never blocks the subscription: a request beyond `max_concurrency` waits in a bounded queue
(`max_pending`); beyond that it is refused at once with a 503 saying so. Every request has a deadline:
the caller's budget (`Sc-Timeout` header) counted from its arrival here, less a small margin so the
answer still reaches the caller in time (`margin()`). A request whose deadline passes before it starts
is dropped (504, never run); the handler sees the deadline in `mesh.context` (for database statement
timeouts, nested calls); one that has not answered shortly after it is cancelled and answered 504 by
the runtime itself, so a stuck handler never makes its caller wait past its own deadline. The request
id (`Sc-Request-Id`) is set in `mesh.context` for the logs.

`FunctionService` is the function-call layer on top: it decodes the `Call` envelope and accepts
`f(params, auth)`, `f(params)` or `f()`, sync or async.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.micro.service import (
    EndpointInfo,
    EndpointStats,
    ServiceInfo,
    ServicePing,
    ServiceStats,
    ServiceVerb,
    control_subject,
)

from common.errors import ServiceUnavailable, SpaceCloudError, Timeout

from . import subjects
from .codec import pack
from .connect import settle
from .context import DEADLINE, REQUEST_ID
from .limits import Bulkhead
from .messages import (
    ERROR_CODE_HEADER,
    ERROR_HEADER,
    REQUEST_ID_HEADER,
    TIMEOUT_HEADER,
    Auth,
    Call,
    decode_timeout,
)

log = logging.getLogger("space_cloud.service")

RawHandler = Callable[[Msg], Awaitable[bytes]]
"""An endpoint's handler: the request message -> the reply payload; a `SpaceCloudError` is an error reply."""

Handler = Callable[[Any, Auth], Awaitable[Any]]
"""A function of a service: `(params, auth) -> result`."""

TimeoutText = Callable[[Msg, float], str]
"""What a 504 for a cancelled request says: (request, seconds it had) -> message."""

TICK = 0.01
"""Width of a deadline bucket, in seconds (a stuck request is answered at most this late)."""


def margin(budget: float) -> float:
    """Seconds kept back from a caller's budget so that an answer made at our deadline still reaches it:
    a tenth of the budget, at most half a second."""
    return min(0.5, budget / 10)


def _timeout_text(msg: Msg, seconds: float) -> str:
    return f"{msg.subject} did not finish within {seconds:.3g}s and was cancelled"


@dataclass(eq=False)
class _Endpoint:
    name: str
    subject: str
    handler: RawHandler
    metadata: dict[str, str] | None = None
    data: Callable[[], dict[str, Any]] | None = None
    timeout_text: TimeoutText = _timeout_text
    requests: int = 0
    errors: int = 0
    nanos: int = 0
    last_error: str | None = None
    rejected: int = 0
    """Refused at once: the instance was full."""
    expired: int = 0
    """Dropped before they started: their deadline had passed."""
    timed_out: int = 0
    """Answered 504 by the runtime (cancelled: the handler did not finish in time)."""
    sub: Any = None

    def stats(self, queue: str) -> EndpointStats:
        return EndpointStats(
            name=self.name, subject=self.subject, queue_group=queue, num_requests=self.requests,
            num_errors=self.errors, processing_time=self.nanos,
            average_processing_time=self.nanos // self.requests if self.requests else 0, last_error=self.last_error,
            data=self.data() if self.data is not None else {},
        )


class _Running:
    """One request with a deadline, as the deadline buckets see it."""

    __slots__ = ("answered", "budget", "ep", "msg", "task", "tick")

    def __init__(self, ep: _Endpoint, msg: Msg, task: asyncio.Task[Any], budget: float) -> None:
        self.ep = ep
        self.msg = msg
        self.task = task
        self.budget = budget
        self.answered = False
        self.tick = 0


class MicroService:
    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        queue_group: str,
        max_concurrency: int | None = 64,
        max_pending: int = 1024,
        default_timeout: float | None = None,
        version: str = "0.1.0",
        description: str = "",
        metadata: dict[str, str] | None = None,
        expose_errors: bool = False,
    ) -> None:
        """`max_concurrency`: requests handled at once (None: no cap here, the handlers bound themselves);
        `max_pending`: how many more may wait for a turn before the instance refuses (503).
        `default_timeout`: the budget of a request that carries none (None: no deadline).
        `expose_errors`: an unexpected exception's text is the error message (a service author's own
        errors); otherwise it is only logged and the caller reads "internal error"."""
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._nc = nc
        self.name = name
        self.id = nc._nuid.next().decode()  # the same unique ids nats-py uses for inboxes
        self._queue = queue_group
        self._version = version
        self._description = description
        self._metadata = metadata or {}
        self._expose_errors = expose_errors
        self._endpoints: list[_Endpoint] = []
        self._control: list[Any] = []
        self._limit = Bulkhead(max_concurrency, max_pending) if max_concurrency is not None else None
        self._default_timeout = default_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._buckets: dict[int, set[_Running]] = {}
        """Requests by the tick their deadline falls in; a request leaves its bucket as it ends, so
        finished ones are not kept alive until their deadline."""
        self._started: dt.datetime | None = None

    def add_endpoint(
        self,
        name: str,
        subject: str,
        handler: RawHandler,
        *,
        metadata: dict[str, str] | None = None,
        data: Callable[[], dict[str, Any]] | None = None,
        timeout_text: TimeoutText | None = None,
    ) -> None:
        """`metadata`: advertised in `$SRV.INFO` (e.g. `idempotent`); `data`: extra `$SRV.STATS` data;
        `timeout_text`: the message of a 504 answered by the runtime."""
        if self._started is not None:
            raise RuntimeError("add endpoints before the service starts")
        self._endpoints.append(_Endpoint(name, subject, handler, metadata, data, timeout_text or _timeout_text))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        if self._started is not None:
            return
        self._started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        for verb, answer in ((ServiceVerb.PING, self._ping), (ServiceVerb.INFO, self._info),
                             (ServiceVerb.STATS, self._stats)):
            for name, sid in ((None, None), (self.name, None), (self.name, self.id)):
                self._control.append(await self._nc.subscribe(control_subject(verb, name, sid), cb=answer))
        for ep in self._endpoints:
            ep.sub = await self._nc.subscribe(ep.subject, queue=self._queue, cb=self._dispatcher(ep),
                                              pending_msgs_limit=-1)
        # The subscriptions are only queued on this connection: make sure the server has them, so a call
        # made by anyone once start() returned finds this instance.
        await settle(self._nc)

    def _dispatcher(self, ep: _Endpoint) -> Callable[[Msg], Awaitable[None]]:
        # nats-py delivers one subscription's messages one after another: never wait in here.
        limit = self._limit

        async def dispatch(msg: Msg) -> None:
            arrival = time.monotonic()
            queued = False
            if limit is not None and not limit.try_enter():
                if limit.waiting >= limit.queue:
                    limit.rejected += 1
                    ep.rejected += 1
                    await self._answer_error(msg, ServiceUnavailable(
                        f"{self.name} instance {self.id} is busy: {limit.running} requests running and "
                        f"{limit.waiting} waiting (its limits)"))
                    return
                queued = True
            task = asyncio.create_task(self._run(ep, msg, arrival, queued))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return dispatch

    async def _run(self, ep: _Endpoint, msg: Msg, arrival: float, queued: bool) -> None:
        headers = msg.headers
        budget = decode_timeout(headers.get(TIMEOUT_HEADER)) if headers else None
        if budget is None:
            budget = self._default_timeout
        if headers:
            REQUEST_ID.set(headers.get(REQUEST_ID_HEADER))
        deadline = None
        if budget is not None:
            deadline = arrival + budget - margin(budget)
            DEADLINE.set(deadline)
        limit = self._limit
        holds = not queued
        try:
            expired = False
            if queued:
                assert limit is not None
                try:
                    holds = await limit.enter(deadline)
                except TimeoutError:
                    expired = True
                else:
                    if not holds:
                        ep.rejected += 1
                        await self._answer_error(msg, ServiceUnavailable(
                            f"{self.name} instance {self.id} is busy: {limit.running} requests running and "
                            f"{limit.waiting} waiting (its limits)"))
                        return
            if deadline is not None and (expired or time.monotonic() >= deadline):
                ep.expired += 1
                waited = time.monotonic() - arrival
                log.info("%s: dropped %s: its deadline passed before it started (waited %.3gs)", self.name,
                         msg.subject, waited)
                await self._answer_error(msg, Timeout(
                    f"{msg.subject}: its deadline passed while it waited {waited:.3g}s for a turn on {self.name} "
                    f"instance {self.id}; it was dropped before it started"))
                return
            running = None
            if budget is not None and deadline is not None:
                task = asyncio.current_task()
                assert task is not None
                running = _Running(ep, msg, task, deadline - arrival)
                self._expire_at(deadline + margin(budget) / 2, running)
                try:
                    await self._handle(ep, msg, running)
                finally:
                    bucket = self._buckets.get(running.tick)
                    if bucket is not None:
                        bucket.discard(running)
            else:
                await self._handle(ep, msg, None)
        finally:
            if holds and limit is not None:
                limit.leave()

    async def _handle(self, ep: _Endpoint, msg: Msg, running: _Running | None) -> None:
        start = time.perf_counter_ns()
        ep.requests += 1
        try:
            try:
                payload = await ep.handler(msg)
                headers = None
            except asyncio.CancelledError:
                if running is None or not running.answered:
                    raise
                return  # cancelled at its deadline, already answered 504
            except SpaceCloudError as exc:
                ep.errors += 1
                ep.last_error = f"{exc.status} {exc.message}"
                payload, headers = b"", self._error_headers(msg, exc.status, exc.message)
            except Exception as exc:
                ep.errors += 1
                ep.last_error = f"500 {type(exc).__name__}"
                log.exception("%s: %s failed", self.name, msg.subject)
                text = (str(exc) or type(exc).__name__) if self._expose_errors else f"internal error in {self.name}"
                payload, headers = b"", self._error_headers(msg, 500, text)
            ep.nanos += time.perf_counter_ns() - start
            if running is not None:
                if running.answered:
                    log.warning("%s: %s finished after its deadline; its caller was answered 504", self.name,
                                msg.subject)
                    return
                running.answered = True
            if msg.reply:
                await self._nc.publish(msg.reply, payload, headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception:  # the connection went away while answering
            log.warning("could not answer %s", msg.subject, exc_info=True)

    @staticmethod
    def _error_headers(msg: Msg, status: int, text: str) -> dict[str, str]:
        out = {ERROR_CODE_HEADER: str(status), ERROR_HEADER: text}
        rid = msg.headers.get(REQUEST_ID_HEADER) if msg.headers else None
        if rid:
            out[REQUEST_ID_HEADER] = rid
        return out

    async def _answer_error(self, msg: Msg, exc: SpaceCloudError) -> None:
        if not msg.reply:
            return
        try:
            await self._nc.publish(msg.reply, b"", headers=self._error_headers(msg, exc.status, exc.message))
        except Exception:
            log.warning("could not answer %s", msg.subject, exc_info=True)

    # -- deadlines: requests in buckets of TICK seconds, one timer per bucket -------------------------

    def _expire_at(self, at: float, running: _Running) -> None:
        tick = running.tick = math.ceil(at / TICK)
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            loop = asyncio.get_running_loop()
            loop.call_at(loop.time() + (tick * TICK - time.monotonic()), self._expire, tick)
        bucket.add(running)

    def _expire(self, tick: int) -> None:
        for running in self._buckets.pop(tick, ()):
            if running.answered or running.task.done():
                continue
            running.answered = True
            ep = running.ep
            ep.timed_out += 1
            ep.errors += 1
            text = ep.timeout_text(running.msg, running.budget)
            ep.last_error = f"504 {text}"
            # A timer's callback runs in no request's context: name the request explicitly.
            headers = running.msg.headers
            rid = headers.get(REQUEST_ID_HEADER) if headers else None
            log.warning("%s: %s", self.name, text, extra={"request_id": rid or "-"})
            running.task.cancel()
            task = asyncio.get_running_loop().create_task(self._answer_error(running.msg, Timeout(text)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def info(self) -> ServiceInfo:
        return ServiceInfo(
            name=self.name, id=self.id, version=self._version, description=self._description,
            metadata=self._metadata,
            endpoints=[EndpointInfo(name=ep.name, subject=ep.subject, queue_group=self._queue,
                                    metadata=ep.metadata or {})
                       for ep in self._endpoints],
        )

    def stats(self) -> ServiceStats:
        return ServiceStats(
            id=self.id, name=self.name, version=self._version, metadata=self._metadata,
            started=self._started or dt.datetime.now(dt.UTC).replace(tzinfo=None),
            endpoints=[ep.stats(self._queue) for ep in self._endpoints],
        )

    async def _ping(self, msg: Msg) -> None:
        ping = ServicePing(id=self.id, name=self.name, version=self._version, metadata=self._metadata)
        await msg.respond(json.dumps(ping.to_dict()).encode())

    async def _info(self, msg: Msg) -> None:
        await msg.respond(json.dumps(self.info().to_dict()).encode())

    async def _stats(self, msg: Msg) -> None:
        await msg.respond(json.dumps(self.stats().to_dict()).encode())

    async def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Stop taking requests, let in-flight ones finish (up to `drain_timeout`), then leave discovery."""
        if self._started is None:
            return
        for ep in self._endpoints:
            if ep.sub is not None:
                with contextlib.suppress(Exception):
                    await ep.sub.drain()
                ep.sub = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()
        for sub in self._control:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._control.clear()
        self._started = None


def as_handler(fn: Callable[..., Any]) -> Handler:
    """Accept `f(params, auth)`, `f(params)` or `f()`, async or sync (sync runs in a thread)."""
    try:
        nparams = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        nparams = 2
    nparams = min(nparams, 2)
    is_async = inspect.iscoroutinefunction(fn)
    if is_async and nparams == 2:
        return cast(Handler, fn)  # already the right shape: no wrapper on every call

    async def handler(params: Any, auth: Auth) -> Any:
        args = (params, auth)[:nparams]
        if is_async:
            return await fn(*args)
        return await asyncio.to_thread(fn, *args)

    return handler


Invoke = Callable[[str, Any, Auth], Awaitable[Any]]
"""A handler for any function of a service: `(func, params, auth)`."""


IDEMPOTENT = "idempotent"
"""Endpoint metadata key: "true" when the function may safely run twice (the gateway may then retry it)."""


def _function_timeout_text(msg: Msg, seconds: float) -> str:
    parts = msg.subject.split(".")
    name = f"{parts[3]}.{parts[4]}" if len(parts) == 5 else msg.subject
    return f"function {name} did not finish within {seconds:.3g}s and was cancelled"


class FunctionService(MicroService):
    """One instance of a service of a project: its functions as endpoints, queue group = service name."""

    def __init__(
        self,
        nc: Client,
        *,
        project: str,
        name: str,
        functions: dict[str, Handler] | None = None,
        any_function: Invoke | None = None,
        idempotent: set[str] | frozenset[str] = frozenset(),
        max_concurrency: int = 64,
        max_pending: int = 1024,
        version: str = "0.1.0",
        metadata: dict[str, str] | None = None,
    ) -> None:
        """`idempotent`: names of functions that may safely run twice, advertised in their endpoint
        metadata so gateways may retry them on another instance."""
        subjects.check_name("project", project)
        subjects.check_name("service", name)
        functions = functions or {}
        if not functions and any_function is None:
            raise ValueError("a service needs functions or an any_function handler")
        super().__init__(
            nc, name=name, queue_group=name, max_concurrency=max_concurrency, max_pending=max_pending,
            version=version, description=f"space-cloud service {name} of project {project}",
            metadata={"project": project, **(metadata or {})}, expose_errors=True,
        )
        self.project = project
        for fname, fn in functions.items():
            subjects.check_name("function", fname)
            self.add_endpoint(fname, subjects.fn(project, name, fname), self._call(fn),
                              metadata={IDEMPOTENT: "true"} if fname in idempotent else None,
                              timeout_text=_function_timeout_text)
        if any_function is not None:
            self.add_endpoint("any", subjects.fn_service_wildcard(project, name), self._call_any(any_function),
                              timeout_text=_function_timeout_text)

    @staticmethod
    def _call(fn: Handler) -> RawHandler:
        async def handle(msg: Msg) -> bytes:
            call = Call.decode(msg.data)
            return pack(await fn(call.params, call.auth))

        return handle

    @staticmethod
    def _call_any(fn: Invoke) -> RawHandler:
        async def handle(msg: Msg) -> bytes:
            call = Call.decode(msg.data)
            return pack(await fn(subjects.parse_fn(msg.subject)[2], call.params, call.auth))

        return handle
