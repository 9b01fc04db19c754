"""The retained change stream (NATS JetStream): what a reconnecting client missed."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time

from nats.aio.client import Client as Nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from common.errors import BadRequest
from mesh import subjects
from mesh.messages import ChangeEvent

log = logging.getLogger("space_cloud.live")

STREAM = "SC_CHANGES"
MARGIN_MS = 5000
"""Replay starts this much before the client's last event: clocks differ a little; replays are harmless."""


class ChangeStream:
    def __init__(self, nc: Nats, *, max_age: float = 3600.0, max_bytes: int = 1 << 30) -> None:
        self._nc = nc
        self.max_age = max_age
        self._max_bytes = max_bytes
        self.available = False

    async def start(self) -> None:
        js = self._nc.jetstream(timeout=5)
        config = StreamConfig(
            name=STREAM, subjects=[subjects.changes_stream_subjects()], max_age=self.max_age,
            max_bytes=self._max_bytes, storage=StorageType.FILE, discard=DiscardPolicy.OLD,
        )
        try:
            try:
                await js.add_stream(config)
            except BadRequestError:
                await js.update_stream(config)
            self.available = True
        except Exception as exc:
            log.warning("JetStream unavailable (%s): clients that reconnect will re-read instead of resuming", exc)

    def covers(self, since_ms: float) -> bool:
        return self.available and since_ms >= time.time() * 1000 - self.max_age * 1000 + MARGIN_MS

    async def since(self, project: str, alias: str, col: str, since_ms: float, *, limit: int = 100_000
                    ) -> list[ChangeEvent] | None:
        """Change events of one collection since `since_ms`; None when the stream cannot tell."""
        if not self.covers(since_ms):
            return None
        js = self._nc.jetstream(timeout=5)
        start = dt.datetime.fromtimestamp(max(since_ms - MARGIN_MS, 0) / 1000, tz=dt.UTC)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start,
                                ack_policy=AckPolicy.NONE, inactive_threshold=30, mem_storage=True)
        try:
            psub = await js.pull_subscribe(subjects.changes(project, alias, col), stream=STREAM, config=config)
        except Exception as exc:
            log.warning("cannot replay changes: %s", exc)
            return None
        events: list[ChangeEvent] = []
        try:
            pending = (await psub.consumer_info()).num_pending or 0
            if pending > limit:
                return None
            while len(events) < pending:
                for msg in await psub.fetch(batch=min(512, pending - len(events)), timeout=5):
                    try:
                        events.append(ChangeEvent.decode(msg.data))
                    except BadRequest:
                        log.warning("undecodable change event in the stream on %s", msg.subject)
        except Exception as exc:
            log.warning("replay interrupted: %s", exc)
            return None
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
        return events
