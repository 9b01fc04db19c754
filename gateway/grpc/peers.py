"""The `RealTime` and `Service` streams as a `gateway.peer.Peer`: what live queries and the service bridge
talk to, exactly as they talk to a WebSocket.

Each stream has a bounded send queue (the gateway's `wsQueue`): a client too slow to read is dropped
(`RESOURCE_EXHAUSTED`, "slow consumer") and never slows anyone else. Where the live-query manager
closes a WebSocket (an expired token: 4401), the stream ends with a gRPC status instead. Replies and
pushes arrive in the WebSocket's `{type, data}` terms and are turned into the stream's messages here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

import grpc
import orjson
from google.protobuf.message import Message

from common.errors import BadRequest
from gateway.grpc.stubs import pb
from gateway.peer import FeedFrame

log = logging.getLogger("space_cloud.grpc")

M = TypeVar("M", bound=Message)


CLOSE_STATUS = {4401: grpc.StatusCode.UNAUTHENTICATED, 4008: grpc.StatusCode.RESOURCE_EXHAUSTED,
                1001: grpc.StatusCode.UNAVAILABLE}
"""The gRPC status that ends a stream for a WebSocket close code (`Peer.close`); others are ABORTED."""


class StreamPeer(Generic[M]):
    """One bidirectional stream: a bounded queue of messages for the rpc's writer to yield."""

    kind = "grpc"

    def __init__(self, *, max_queue: int) -> None:
        self.id = uuid.uuid4().hex
        self.project: str | None = None
        self.closed = False
        self.ended_by: tuple[grpc.StatusCode, str] | None = None
        """Why the server ends the stream (a slow consumer, an expired token), as the status to end it with."""
        self._queue: collections.deque[M] = collections.deque()
        self._max_queue = max_queue
        self._ending = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.on_overflow: Callable[[], object] | None = None
        """Called when the queue overflows: the writer may be stuck in a write the client never reads."""

    def project_of(self, data: dict[str, Any]) -> str:
        project = data.get("project")
        if not isinstance(project, str) or not project:
            raise BadRequest("`project` is required")
        return project

    def put(self, message: M) -> None:
        """Queue a message; never blocks. Overflow ends the stream (slow consumer)."""
        if self.closed or self._ending:
            return
        if len(self._queue) >= self._max_queue:
            self._queue.clear()
            self._ending = True
            self.ended_by = (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow consumer: send queue overflowed")
            log.warning("ending gRPC stream %s: slow consumer (send queue overflowed)", self.id)
            if self.on_overflow is not None:
                self.on_overflow()
        else:
            self._queue.append(message)
        self._wake.set()

    def end(self) -> None:
        """No more messages: the writer stops once it has sent what is queued."""
        self._ending = True
        self._wake.set()
        self._room.set()

    async def writable(self) -> None:
        """Wait until the send queue is at most half full, or the stream is ending."""
        while len(self._queue) > self._max_queue // 2 and not self.closed and not self._ending:
            self._room.clear()
            with contextlib.suppress(TimeoutError):  # look at `closed` again now and then
                await asyncio.wait_for(self._room.wait(), 0.5)

    def close(self, code: int, reason: str) -> None:
        """Send what is queued, then end the stream with the status for `code` (`CLOSE_STATUS`)."""
        if self.ended_by is None:
            self.ended_by = (CLOSE_STATUS.get(code, grpc.StatusCode.ABORTED), reason)
        self.end()

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def push(self, type_: str, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        raise NotImplementedError

    async def outgoing(self) -> AsyncIterator[M]:
        """The messages to send, in order, until `end()` (or an overflow)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                yield self._queue.popleft()
                if len(self._queue) <= self._max_queue // 2:
                    self._room.set()
            self._room.set()
            if self._ending:
                return


def _feed(d: dict[str, Any]) -> pb.FeedData:
    return pb.FeedData(queryId=str(d.get("id") or ""), docId=str(d.get("docId") or ""), type=str(d.get("type") or ""),
                       group=str(d.get("group") or ""), dbType=str(d.get("dbType") or ""),
                       payload=orjson.dumps(d.get("payload")), timeStamp=int(d.get("time") or 0))


class RealtimePeer(StreamPeer[pb.RealTimeResponse]):
    """A `RealTime` stream: subscribe/unsubscribe acks and live-query changes, each a `RealTimeResponse`
    whose `id` is the live query's."""

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        qid = data.get("id")
        self.put(pb.RealTimeResponse(
            id=qid if isinstance(qid, str) and qid else req_id, group=str(data.get("group") or ""),
            ack=bool(data.get("ack")), error=str(data.get("error") or ""),
            feedData=[_feed(d) for d in data.get("docs") or []],
            resumed=bool(data.get("resumed")), reset=bool(data.get("reset")), time=int(data.get("time") or 0),
        ))

    def push(self, type_: str, data: dict[str, Any]) -> None:
        if type_ == "realtime-feed":
            qid = str(data.get("id") or "")
            self.put(pb.RealTimeResponse(id=qid, group=str(data.get("group") or ""), ack=True, feedData=[_feed(data)]))
        else:
            log.debug("no %s pushes on a RealTime stream", type_)

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        self.put(pb.RealTimeResponse(id=qid, group=frame.group, ack=True, feedData=[pb.FeedData(
            queryId=qid, docId=frame.doc_id, type=frame.kind, group=frame.group, dbType=frame.db_type,
            payload=frame.payload_json(), timeStamp=frame.time,
        )]))


class ServicePeer(StreamPeer[pb.FunctionsPayload]):
    """A `Service` stream: registration acks, and calls pushed to the service (`service-request`)."""

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        self.put(pb.FunctionsPayload(id=req_id, type=type_, params=orjson.dumps(data),
                                     error=str(data.get("error") or "")))

    def push(self, type_: str, data: dict[str, Any]) -> None:
        self.put(pb.FunctionsPayload(
            id=str(data.get("id") or ""), type=type_, service=str(data.get("service") or ""),
            function=str(data.get("func") or ""), auth=orjson.dumps(data.get("auth") or {}),
            params=orjson.dumps(data.get("params")), error=str(data.get("error") or ""),
        ))

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        log.debug("no live queries on a Service stream")
