"""A client on a streaming transport, as live queries and the service bridge see it.

A WebSocket (`gateway.ws.Client`) and a gRPC stream (`gateway.grpc.peers`) are both a `Peer`: they
take replies and pushes in the WebSocket's `{id, type, data}` terms, and live-query changes as a
`FeedFrame`, and each encodes them for its own wire behind a bounded send queue.
"""

from __future__ import annotations

from typing import Any, Protocol


class FeedFrame(Protocol):
    """One change of one live query, the same for every subscriber of that query.

    Each transport encodes it at most once per event and query (`gateway.live.frames.SharedFeed`)."""

    @property
    def doc_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def time(self) -> int: ...
    @property
    def group(self) -> str: ...
    @property
    def db_type(self) -> str: ...

    def payload_json(self) -> bytes:
        """The payload as JSON."""
        ...

    def ws_text(self, qid: str) -> str:
        """The whole `realtime-feed` WebSocket frame for the live query `qid`."""
        ...

    def ws_frame(self, qid: str) -> bytes:
        """`ws_text` as an encoded WebSocket text frame (`gateway.wsraw`)."""
        ...


class Peer(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str:
        """The transport ("websocket", "grpc"), for discovery metadata and logs."""
        ...

    @property
    def closed(self) -> bool:
        """Gone: its close hooks have run, or are running."""
        ...

    def project_of(self, data: dict[str, Any]) -> str:
        """The project a request is about (the socket's path, or `data.project`); 400 without one."""
        ...

    def reply(self, req_id: str, type_: str, data: dict[str, Any]) -> None:
        """Answer the request `req_id` of type `type_`; never blocks."""
        ...

    def push(self, type_: str, data: dict[str, Any]) -> None:
        """An unsolicited message (`service-request`); never blocks."""
        ...

    def send_feed(self, qid: str, frame: FeedFrame) -> None:
        """A live-query change for the live query `qid`; never blocks."""
        ...

    async def writable(self) -> None:
        """Wait until the send queue is at most half full, or the peer is gone (a long replay paces
        itself on this instead of overflowing the queue)."""
        ...

    def close(self, code: int, reason: str) -> None:
        """End the connection after what is queued (a WebSocket close code; a stream's status)."""
        ...
