"""Running functions as a NATS micro service: endpoints in a queue group, calls handled concurrently.

nats-py runs one subscription's callbacks one after another; each call here becomes its own
task, bounded by a semaphore (the cap), so a slow call does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from nats.aio.client import Client
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from common.errors import SpaceCloudError

from . import subjects
from .codec import pack, unpack

log = logging.getLogger("space_cloud.service")

Auth = dict[str, Any] | None
Handler = Callable[[Any, Auth], Awaitable[Any]]
Invoke = Callable[[str, Any, Auth], Awaitable[Any]]
"""A handler for any function of a service: `(func, params, auth)`."""


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


class FunctionService:
    """One instance of a service: its functions as micro endpoints, queue group = service name."""

    def __init__(
        self,
        nc: Client,
        *,
        project: str,
        name: str,
        functions: dict[str, Handler] | None = None,
        any_function: Invoke | None = None,
        any_subject: str | None = None,
        queue_group: str | None = None,
        max_concurrency: int = 64,
        version: str = "0.1.0",
        metadata: dict[str, str] | None = None,
    ) -> None:
        subjects.check_name("project", project)
        subjects.check_name("service", name)
        functions = functions or {}
        if not functions and any_function is None:
            raise ValueError("a service needs functions or an any_function handler")
        for fname in functions:
            subjects.check_name("function", fname)
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._nc = nc
        self.project = project
        self.name = name
        self._functions = dict(functions)
        self._any_function = any_function
        self._any_subject = any_subject or subjects.fn_service_wildcard(project, name)
        self._queue = queue_group or name
        self._version = version
        self._metadata = {"project": project, **(metadata or {})}
        self._sem = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._svc: Service | None = None

    @property
    def id(self) -> str:
        if self._svc is None:
            raise RuntimeError("service not started")
        return self._svc.id

    async def start(self) -> None:
        svc = await add_service(
            self._nc,
            name=self.name,
            version=self._version,
            queue_group=self._queue,
            metadata=self._metadata,
            description=f"space-cloud service {self.name} of project {self.project}",
        )
        for fname, fn in self._functions.items():
            await svc.add_endpoint(
                name=fname,
                subject=subjects.fn(self.project, self.name, fname),
                queue_group=self._queue,
                handler=self._dispatcher(fn, None),
            )
        if self._any_function is not None:
            await svc.add_endpoint(
                name="any",
                subject=self._any_subject,
                queue_group=self._queue,
                handler=self._dispatcher(None, self._any_function),
            )
        # The subscriptions above are only queued on this connection: a round trip makes sure the server
        # has them, so a call made by anyone once start() returned finds this instance.
        await self._nc.flush()
        self._svc = svc

    def _dispatcher(self, fn: Handler | None, any_fn: Invoke | None) -> Callable[[Request], Awaitable[None]]:
        async def dispatch(req: Request) -> None:
            await self._sem.acquire()
            task = asyncio.create_task(self._run(req, fn, any_fn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return dispatch

    async def _run(self, req: Request, fn: Handler | None, any_fn: Invoke | None) -> None:
        try:
            try:
                body = unpack(req.data) or {}
                if not isinstance(body, dict):
                    raise SpaceCloudError("malformed call envelope")
                if fn is not None:
                    result = await fn(body.get("params"), body.get("auth"))
                else:
                    assert any_fn is not None
                    result = await any_fn(req.subject.rsplit(".", 1)[-1], body.get("params"), body.get("auth"))
                payload = pack(result)
            except SpaceCloudError as exc:
                await req.respond_error(str(exc.status), exc.message)
            except Exception as exc:
                log.exception("function %s.%s failed", self.name, req.subject.rsplit(".", 1)[-1])
                await req.respond_error("500", str(exc) or type(exc).__name__)
            else:
                await req.respond(payload)
        except Exception:  # the connection went away while answering
            log.warning("could not answer a call to %s", req.subject, exc_info=True)
        finally:
            self._sem.release()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def stop(self, *, drain_timeout: float = 30.0) -> None:
        """Stop taking calls, let in-flight calls finish (up to `drain_timeout`), then leave discovery."""
        svc, self._svc = self._svc, None
        if svc is None:
            return
        for endpoint in getattr(svc, "_endpoints", []):
            sub = getattr(endpoint, "_subscription", None)
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.drain()
                endpoint._subscription = None
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            svc._endpoints = []
            await svc.stop()
