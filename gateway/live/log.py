"""Reading the change log by position: what live queries follow, and what a resume replays.

Each followed collection has a `Follower`: an ephemeral pull consumer of the `SC_CHANGES` stream
filtered on the collection's subject, started at a stream position and pulled again only once the
events it delivered were handled (flow control by construction). Pull requests ask for idle
heartbeats, and the consumer's own sequence must grow by one: a silent link, a lost consumer (its
server died, NATS restarted) or a skipped message all lead to a new consumer from the last position
handled, so a NATS loss delays events and never drops them. Where the stream no longer holds the
events after that position (retention, a purge, a new stream), the follower says so (`on_gap`)
instead of going on as if nothing was missed.

A `Cursor` is a position as clients hold it: the stream's incarnation (its creation time) and a
sequence, in an opaque string.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from common.errors import BadRequest, ServiceUnavailable, SpaceCloudError
from mesh.changelog import STREAM, LogSettings, api, ensure_stream, parse_time, stream_info
from mesh.messages import ChangeEvent

log = logging.getLogger("space_cloud.live")

MARGIN_MS = 5000
"""A resume by time starts this much earlier: clocks differ a little, and replays are harmless."""
HEARTBEAT = 1.0
"""Seconds between the server's idle heartbeats on a waiting pull; three missed ones mean a new consumer."""
PULL_EXPIRES = 10.0
PAGE = 256
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Cursor:
    epoch: int
    """The stream's creation time (ms): a stream made anew restarts its sequences."""
    seq: int

    def encode(self) -> str:
        return f"{self.epoch:x}.{self.seq:x}"

    @classmethod
    def decode(cls, text: object) -> Cursor:
        if not isinstance(text, str) or text.count(".") != 1 or len(text) > 40:
            raise BadRequest("`options.cursor` must be a cursor the server sent")
        epoch, seq = text.split(".")
        try:
            return cls(int(epoch, 16), int(seq, 16))
        except ValueError:
            raise BadRequest("`options.cursor` must be a cursor the server sent") from None


@dataclass(frozen=True, slots=True)
class LogState:
    epoch: int
    first_seq: int
    last_seq: int
    first_ms: float | None

    @classmethod
    def of(cls, info: dict[str, Any]) -> LogState:
        state = info.get("state") or {}
        created = parse_time(info.get("created")) or 0.0
        first = parse_time(state.get("first_ts"))
        return cls(int(created * 1000), int(state.get("first_seq") or 0), int(state.get("last_seq") or 0),
                   first * 1000 if first is not None else None)

    def covers_after(self, cursor: Cursor) -> bool:
        """Whether every event after `cursor` is still in the stream."""
        return cursor.epoch == self.epoch and cursor.seq <= self.last_seq and cursor.seq + 1 >= self.first_seq

    def covers_since(self, ms: float) -> bool:
        """Whether every event since `ms` (epoch ms) is still in the stream (from `MARGIN_MS` before it)."""
        if self.epoch > ms:
            return False  # made since: what came before it is not there
        nothing_removed = self.first_seq <= 1
        return nothing_removed or (self.first_ms is not None and self.first_ms <= ms - MARGIN_MS)


Start = int | float
"""Where a consumer starts: after a stream sequence (int), or at a time in epoch ms (float)."""


class Gap(Exception):
    """The stream no longer holds what came after a position."""


class _Stale(Exception):
    """The consumer stopped answering, or skipped a message: make a new one."""


class _Pull:
    """One ephemeral pull consumer of one subject and the inbox its messages come to."""

    def __init__(self, nc: Nats, subject: str) -> None:
        self.nc, self.subject = nc, subject
        self.name = ""
        self.pending = 0
        self._sub: Any = None
        self._cseq = 0
        self._inbox = ""

    async def open(self, start: Start) -> None:
        self._inbox = self.nc.new_inbox()
        self._sub = await self.nc.subscribe(self._inbox, pending_msgs_limit=4 * PAGE + 64)
        config: dict[str, Any] = {"ack_policy": "none", "filter_subject": self.subject, "mem_storage": True,
                                  "num_replicas": 1, "inactive_threshold": int(30 * _NS), "max_waiting": 8}
        if isinstance(start, int):
            config.update(deliver_policy="by_start_sequence", opt_start_seq=start + 1)
        else:
            when = dt.datetime.fromtimestamp(max(start, 0) / 1000, tz=dt.UTC)
            config.update(deliver_policy="by_start_time", opt_start_time=when.isoformat().replace("+00:00", "Z"))
        try:
            reply = await api(self.nc, f"$JS.API.CONSUMER.CREATE.{STREAM}", {"stream_name": STREAM,
                                                                              "config": config})
        except BaseException:
            await self.close()
            raise
        self.name = str(reply.get("name") or "")
        self.pending = int(reply.get("num_pending") or 0)
        self._cseq = 0

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.name:
            name, self.name = self.name, ""
            with contextlib.suppress(Exception):
                await self.nc.publish(f"$JS.API.CONSUMER.DELETE.{STREAM}.{name}", b"")

    async def messages(self, *, no_wait: bool) -> AsyncIterator[tuple[int, Msg]]:
        """One pull request's messages, (stream sequence, message) each, as they arrive."""
        body: dict[str, Any] = {"batch": PAGE}
        if no_wait:
            body["no_wait"] = True
        else:
            body.update(expires=int(PULL_EXPIRES * _NS), idle_heartbeat=int(HEARTBEAT * _NS))
        await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{self.name}", orjson.dumps(body),
                              reply=self._inbox)
        got = 0
        while got < PAGE:
            try:
                msg = await self._sub.next_msg(timeout=HEARTBEAT * 3 if not no_wait else 5.0)
            except (TimeoutError, NatsError):
                raise _Stale("no answer from the consumer") from None
            status = msg.headers.get("Status") if msg.headers and not msg.data else None
            if status is not None:
                if status == "100":
                    continue
                if status in ("404", "408"):
                    return
                raise _Stale(f"consumer status {status} {msg.headers.get('Description', '') if msg.headers else ''}")
            try:
                meta = msg.metadata
            except Exception:
                log.debug("not a JetStream message on %s's inbox", self.subject)
                continue
            if meta.consumer != self.name:
                continue  # late from an earlier consumer
            if meta.sequence.consumer != self._cseq + 1:
                raise _Stale(f"consumer skipped from {self._cseq} to {meta.sequence.consumer}")
            self._cseq = meta.sequence.consumer
            self.pending = meta.num_pending
            got += 1
            yield meta.sequence.stream, msg


def decode(msg: Msg) -> ChangeEvent | None:
    try:
        return ChangeEvent.decode(msg.data)
    except BadRequest:
        log.warning("undecodable change event in the log on %s", msg.subject)
        return None


OnEvent = Callable[[int, ChangeEvent], Awaitable[None]]
OnGap = Callable[[], Awaitable[None]]


class Follower:
    """One collection's events, in log order, from a position on, whatever happens to NATS."""

    def __init__(self, changelog: ChangeLogReader, subject: str, start: Start, epoch: int | None,
                 on_event: OnEvent, on_gap: OnGap) -> None:
        self.log, self.subject = changelog, subject
        self.position: int = start if isinstance(start, int) else 0
        """The stream sequence of the last event handled (0 before any, when started by time)."""
        self._start = start
        self.epoch = epoch
        self.on_event, self.on_gap = on_event, on_gap
        self.healthy = False
        self.reopened = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def cursor(self) -> Cursor | None:
        return Cursor(self.epoch, self.position) if self.epoch is not None else None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        """Stop following (the consumer goes away in the background)."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            pull = _Pull(self.log.nc, self.subject)
            try:
                await self._check()
                await pull.open(self._start)
                self.healthy = True
                backoff = 0.0
                while True:
                    async for seq, msg in pull.messages(no_wait=False):
                        event = decode(msg)
                        self.position = seq
                        self._start = seq
                        if event is not None:
                            try:
                                await self.on_event(seq, event)
                            except Exception:  # one event that cannot be handled must not stop the rest
                                log.exception("live queries failed on the change at %s of %s", seq, self.subject)
            except asyncio.CancelledError:
                raise
            except Gap:
                self.healthy = False
                await self.on_gap()
            except Exception as exc:
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or self.log.nc.is_closed:
                    return  # nats-py turns a cancelled wait on a closed connection into an error of its own
                self.healthy = False
                self.reopened += 1
                backoff = min(max(backoff * 2, 0.05), 2.0)
                level = logging.INFO if isinstance(exc, _Stale | SpaceCloudError) else logging.WARNING
                log.log(level, "change log follower for %s: %s (again from %s in %.2fs)", self.subject,
                        exc.message if isinstance(exc, SpaceCloudError) else exc, self._start, backoff)
                await asyncio.sleep(backoff)
            finally:
                await pull.close()

    async def _check(self) -> None:
        """Before a new consumer: does the stream still hold everything after the position? A stream made
        anew, or events removed before being read, is a gap (and reading goes on from what is there)."""
        state = await self.log.state()
        if self.epoch is None:
            self.epoch = state.epoch
            if isinstance(self._start, float) and not state.covers_since(self._start + MARGIN_MS):
                self._start = state.first_seq - 1 if state.first_seq else 0
            return
        if not isinstance(self._start, int):
            return
        cursor = Cursor(self.epoch, self._start)
        if state.covers_after(cursor):
            return
        log.warning("change log gap for %s: events after %s are gone (stream %s, first %s, last %s)",
                    self.subject, self._start, state.epoch, state.first_seq, state.last_seq)
        self.epoch = state.epoch
        self._start = self.position = state.last_seq
        raise Gap


class ChangeLogReader:
    """The gateway's access to the change log."""

    def __init__(self, nc: Nats, settings: LogSettings) -> None:
        self.nc = nc
        self.settings = settings
        self.available = False
        self._ensured = False

    async def start(self) -> None:
        try:
            await self._ensure()
        except (SpaceCloudError, NatsError, TimeoutError) as exc:
            log.warning("change log unavailable at start (%s): live queries follow it once it is there", exc)

    async def _ensure(self) -> None:
        if not self._ensured:
            await ensure_stream(self.nc, self.settings)
            self._ensured = True

    async def state(self, *, timeout: float = 2.0) -> LogState:
        if not self.nc.is_connected:
            raise ServiceUnavailable("not connected to NATS")
        info = await stream_info(self.nc, timeout=timeout)
        if info is None:
            self._ensured = False
            await self._ensure()
            info = await stream_info(self.nc, timeout=timeout)
            if info is None:
                raise ServiceUnavailable("the change log stream does not exist")
        self.available = True
        return LogState.of(info)

    async def follow(self, subject: str, on_event: OnEvent, on_gap: OnGap) -> Follower:
        """A running follower from the log's current end (or, while the log cannot be reached, from a few
        seconds ago once it can)."""
        try:
            state = await self.state()
            follower = Follower(self, subject, state.last_seq, state.epoch, on_event, on_gap)
        except (SpaceCloudError, NatsError, TimeoutError) as exc:
            log.warning("following %s from a time (the change log cannot be reached: %s)", subject, exc)
            follower = Follower(self, subject, time.time() * 1000 - MARGIN_MS, None, on_event, on_gap)
        follower.start()
        return follower

    async def replay(self, subject: str, start: Start, until: int) -> AsyncIterator[list[tuple[int, ChangeEvent]]]:
        """The events of `subject` after a position (or since a time) up to stream sequence `until`, a page
        at a time: the next page is read only once the caller asks for it."""
        pull = _Pull(self.nc, subject)
        await pull.open(start)
        try:
            if pull.pending == 0:
                return
            while True:
                page: list[tuple[int, ChangeEvent]] = []
                done = False
                async for seq, msg in pull.messages(no_wait=True):
                    if seq > until:
                        done = True
                        break
                    event = decode(msg)
                    if event is not None:
                        page.append((seq, event))
                    if seq == until or pull.pending == 0:
                        done = True
                        break  # not waiting for the end of the pull: there is nothing more to read
                if page:
                    yield page
                if done or not page:
                    return
        finally:
            await pull.close()
