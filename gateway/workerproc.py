"""The db worker of `space-cloud run` in a process of its own (`--worker-process`, the default on a
machine with more than one core).

In the gateway's process the worker shares one event loop, so one core, with every HTTP exchange and
socket; in a process of its own it runs beside it (the same NATS requests, the same subjects and
credentials: nothing else changes). The parent keeps what the in-process worker had:

- config changes made through the config API reach the worker (over a pipe: `update`);
- the worker's metrics are part of the gateway's `/metrics` (asked for over the pipe at each scrape);
- the worker ends with the gateway (SIGTERM after the gateway has drained; and by itself, within a
  second, when the gateway dies without a word), and a worker that dies is started again.

The child ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole process group, and so may a service
manager's SIGTERM (systemd's default sends it to every process of the unit), while the worker must keep
answering until the gateway has finished its in-flight requests. It stops when the gateway closes the
pipe (or dies); SIGKILL still ends it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ServiceUnavailable
from mesh.connect import NatsTarget

if TYPE_CHECKING:
    from worker.changelog import ChangeLogOptions
    from worker.spec import DatabaseSpec

log = logging.getLogger("space_cloud")

START_TIMEOUT = 60.0
"""Seconds a starting worker process has to say it is ready (importing and connecting)."""
ASK_TIMEOUT = 2.0
"""Seconds the gateway waits for the worker's answer over the pipe (an update, its metrics). The
gateway's event loop waits with it: kept short."""


class WorkerProcess:
    """A `DbWorker` in a spawned child process, kept running while the gateway runs."""

    def __init__(self, target: NatsTarget, databases: list[DatabaseSpec], *, options: dict[str, Any],
                 changelog: ChangeLogOptions, log_args: tuple[str, str]) -> None:
        self._target = target
        self._databases = databases
        self._options = options
        self._changelog = changelog
        self._log_args = log_args
        self._proc: BaseProcess | None = None
        self._pipe: Connection | None = None
        self._lock = threading.Lock()  # one question at a time on the pipe (loop thread and executor)
        self._asked = 0  # questions are numbered: a late answer to one given up on is told apart
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the child and wait until its worker answers on NATS; `ServiceUnavailable` if it cannot."""
        await asyncio.get_running_loop().run_in_executor(None, self._spawn)
        self._watch = asyncio.get_running_loop().create_task(self._keep_alive())

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # not forked: the parent's loop and connections stay its own
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_child, name="space-cloud-worker", daemon=True,
                           args=(child_end, self._target, self._databases, self._options, self._changelog,
                                 self._log_args, os.getpid()))
        proc.start()
        child_end.close()
        try:
            if not parent_end.poll(START_TIMEOUT):
                raise ServiceUnavailable(f"the db worker process did not start within {START_TIMEOUT:.0f}s")
            kind, detail = parent_end.recv()
        except (EOFError, OSError):
            kind, detail = "error", f"it exited with status {proc.exitcode}"
        except ServiceUnavailable:
            _end(proc, 2.0)
            raise
        if kind != "ready":
            _end(proc, 2.0)
            parent_end.close()
            raise ServiceUnavailable(f"the db worker process could not start: {detail}")
        with self._lock:
            self._proc, self._pipe = proc, parent_end

    async def _keep_alive(self) -> None:
        backoff = 0.5
        while not self._stopping:
            await asyncio.sleep(0.5)
            proc = self._proc
            if self._stopping or proc is None or proc.is_alive():
                continue
            log.error("the db worker process ended (status %s): starting it again", proc.exitcode)
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._spawn)
                self.restarts += 1
                backoff = 0.5
            except ServiceUnavailable as exc:
                log.error("%s (trying again in %.1fs)", exc.message, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _ask(self, message: tuple[Any, ...]) -> Any:
        with self._lock:
            pipe = self._pipe
            if pipe is None:
                raise ServiceUnavailable("the db worker process is not running")
            self._asked += 1
            number, until = self._asked, time.monotonic() + ASK_TIMEOUT
            try:
                pipe.send((number, *message))
                while True:
                    if not pipe.poll(max(0.0, until - time.monotonic())):
                        raise ServiceUnavailable("the db worker process did not answer")
                    answered, kind, detail = pipe.recv()
                    if answered == number:
                        break  # older answers belong to questions that timed out
            except (EOFError, OSError, BrokenPipeError):
                raise ServiceUnavailable("the db worker process is not running") from None
        if kind != "ok":
            raise ServiceUnavailable(f"the db worker process refused: {detail}")
        return detail

    def update(self, databases: list[DatabaseSpec]) -> None:
        """The config's databases changed (the config API): the worker takes them, as `DbWorker.update`."""
        self._databases = databases  # a restarted child starts from these
        try:
            self._ask(("update", databases))
        except ServiceUnavailable as exc:
            log.error("db worker process: the new config did not reach it (%s); it takes it when it restarts",
                      exc.message)

    def collect(self) -> Iterator[Metric]:
        """The worker's metrics, for the gateway's `/metrics` (nothing while it is restarting)."""
        try:
            text = self._ask(("metrics",))
        except ServiceUnavailable:
            return
        yield from text_string_to_metric_families(text.decode())

    async def stop(self, timeout: float = 10.0) -> None:
        """Close the pipe (the worker finishes what it is doing and exits), then, after `timeout`, SIGKILL."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        with self._lock:
            proc, pipe, self._proc, self._pipe = self._proc, self._pipe, None, None
        if pipe is not None:
            pipe.close()  # the worker's signal to stop
        if proc is not None:
            await asyncio.get_running_loop().run_in_executor(None, _end, proc, timeout)


def _end(proc: BaseProcess, timeout: float = 10.0) -> None:
    """Wait up to `timeout` for the child to exit (its pipe closed), then SIGKILL it."""
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()


# -- the child -------------------------------------------------------------------------------------


def _child(pipe: Connection, target: NatsTarget, databases: list[DatabaseSpec], options: dict[str, Any],
           changelog: ChangeLogOptions, log_args: tuple[str, str], parent: int) -> None:
    from mesh import logs
    from mesh.loop import run as run_main

    for sig in (signal.SIGINT, signal.SIGTERM):  # the gateway decides when the worker stops: it closes the pipe
        signal.signal(sig, signal.SIG_IGN)
    logs.configure(*log_args)
    run_main(_serve(pipe, target, databases, options, changelog, parent))


async def _serve(pipe: Connection, target: NatsTarget, databases: list[DatabaseSpec], options: dict[str, Any],
                 changelog: ChangeLogOptions, parent: int) -> None:
    from worker import DbWorker

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    worker = DbWorker(target, databases=databases, **options, changelog=changelog)
    try:
        await worker.start()
    except Exception as exc:
        text = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):
            pipe.send(("error", text))
        await worker.stop()
        return

    def on_message() -> None:
        try:
            number, kind, *rest = pipe.recv()
        except (EOFError, OSError):  # the gateway is gone
            loop.remove_reader(pipe.fileno())
            stop.set()
            return
        try:
            if kind == "update":
                worker.update(rest[0])
                pipe.send((number, "ok", None))
            elif kind == "metrics":
                pipe.send((number, "ok", worker.metrics.registry.render()))
            else:
                pipe.send((number, "error", f"unknown message {kind!r}"))
        except OSError:
            stop.set()

    async def orphaned() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 (the parent's death sends nothing)
            await asyncio.sleep(1.0)
        stop.set()

    watch = loop.create_task(orphaned())
    try:
        pipe.send(("ready", None))
        loop.add_reader(pipe.fileno(), on_message)
        await stop.wait()
    finally:
        watch.cancel()
        with contextlib.suppress(Exception):
            loop.remove_reader(pipe.fileno())
        started = time.monotonic()
        await worker.stop()
        log.info("db worker process stopped in %.1fs", time.monotonic() - started)
