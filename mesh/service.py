"""A NATS micro service instance: endpoints in a queue group, requests handled concurrently, true stats.

It speaks the micro protocol (`$SRV.PING/INFO/STATS`, the schemas of `nats.micro`'s public
dataclasses), so standard NATS tooling discovers and measures it. It does not wrap `nats.micro.Service`:
nats-py runs one subscription's callbacks one after another, so a micro endpoint either handles one
request at a time or (handing work to a task) reports about zero processing time and no errors.
Here each request is its own task under a cap, and its time and outcome are measured around the
real work.

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

from common.errors import SpaceCloudError

from . import subjects
from .codec import pack
from .messages import ERROR_CODE_HEADER, ERROR_HEADER, Auth, Call

log = logging.getLogger("space_cloud.service")

RawHandler = Callable[[Msg], Awaitable[bytes]]
"""An endpoint's handler: the request message -> the reply payload; a `SpaceCloudError` is an error reply."""

Handler = Callable[[Any, Auth], Awaitable[Any]]
"""A function of a service: `(params, auth) -> result`."""


@dataclass(eq=False)
class _Endpoint:
    name: str
    subject: str
    handler: RawHandler
    requests: int = 0
    errors: int = 0
    nanos: int = 0
    last_error: str | None = None
    sub: Any = None

    def stats(self, queue: str) -> EndpointStats:
        return EndpointStats(
            name=self.name, subject=self.subject, queue_group=queue, num_requests=self.requests,
            num_errors=self.errors, processing_time=self.nanos,
            average_processing_time=self.nanos // self.requests if self.requests else 0, last_error=self.last_error,
        )


class MicroService:
    def __init__(
        self,
        nc: Client,
        *,
        name: str,
        queue_group: str,
        max_concurrency: int = 64,
        version: str = "0.1.0",
        description: str = "",
        metadata: dict[str, str] | None = None,
        expose_errors: bool = False,
    ) -> None:
        """`expose_errors`: an unexpected exception's text is the error message (a service author's own
        errors); otherwise it is only logged and the caller reads "internal error"."""
        if max_concurrency < 1:
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
        self._sem = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started: dt.datetime | None = None

    def add_endpoint(self, name: str, subject: str, handler: RawHandler) -> None:
        if self._started is not None:
            raise RuntimeError("add endpoints before the service starts")
        self._endpoints.append(_Endpoint(name, subject, handler))

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
        # The subscriptions are only queued on this connection: a round trip makes sure the server has
        # them, so a call made by anyone once start() returned finds this instance.
        await self._nc.flush()

    def _dispatcher(self, ep: _Endpoint) -> Callable[[Msg], Awaitable[None]]:
        async def dispatch(msg: Msg) -> None:
            await self._sem.acquire()
            task = asyncio.create_task(self._run(ep, msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return dispatch

    async def _run(self, ep: _Endpoint, msg: Msg) -> None:
        start = time.perf_counter_ns()
        ep.requests += 1
        try:
            try:
                payload = await ep.handler(msg)
                headers = None
            except SpaceCloudError as exc:
                ep.errors += 1
                ep.last_error = f"{exc.status} {exc.message}"
                payload, headers = b"", {ERROR_CODE_HEADER: str(exc.status), ERROR_HEADER: exc.message}
            except Exception as exc:
                ep.errors += 1
                ep.last_error = f"500 {type(exc).__name__}"
                log.exception("%s: %s failed", self.name, msg.subject)
                text = (str(exc) or type(exc).__name__) if self._expose_errors else f"internal error in {self.name}"
                payload, headers = b"", {ERROR_CODE_HEADER: "500", ERROR_HEADER: text}
            ep.nanos += time.perf_counter_ns() - start
            if msg.reply:
                await self._nc.publish(msg.reply, payload, headers=headers)
        except Exception:  # the connection went away while answering
            log.warning("could not answer %s", msg.subject, exc_info=True)
        finally:
            self._sem.release()

    def info(self) -> ServiceInfo:
        return ServiceInfo(
            name=self.name, id=self.id, version=self._version, description=self._description,
            metadata=self._metadata,
            endpoints=[EndpointInfo(name=ep.name, subject=ep.subject, queue_group=self._queue)
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
        max_concurrency: int = 64,
        version: str = "0.1.0",
        metadata: dict[str, str] | None = None,
    ) -> None:
        subjects.check_name("project", project)
        subjects.check_name("service", name)
        functions = functions or {}
        if not functions and any_function is None:
            raise ValueError("a service needs functions or an any_function handler")
        super().__init__(
            nc, name=name, queue_group=name, max_concurrency=max_concurrency, version=version,
            description=f"space-cloud service {name} of project {project}",
            metadata={"project": project, **(metadata or {})}, expose_errors=True,
        )
        self.project = project
        for fname, fn in functions.items():
            subjects.check_name("function", fname)
            self.add_endpoint(fname, subjects.fn(project, name, fname), self._call(fn))
        if any_function is not None:
            self.add_endpoint("any", subjects.fn_service_wildcard(project, name), self._call_any(any_function))

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
