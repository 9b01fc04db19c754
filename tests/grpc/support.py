"""gRPC for tests: a server on a running gateway, a client generated from the project's own `.proto`, and
stream clients for `RealTime` (merging like Space Cloud's clients) and `Service`."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import orjson

from gateway.grpc.server import GrpcServer
from gateway.grpc.stubs import pb, pb_grpc
from tests.support.servers import RunningGateway

if TYPE_CHECKING:
    from gateway.grpc._generated.space_cloud_pb2_grpc import SpaceCloudAsyncStub


def js(value: Any) -> bytes:
    return orjson.dumps(value)


def result(r: pb.Response) -> Any:
    return orjson.loads(r.result) if r.result else None


@dataclass
class Grpc:
    stub: SpaceCloudAsyncStub
    server: GrpcServer
    channel: grpc.aio.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@contextlib.asynccontextmanager
async def grpc_for(running: RunningGateway) -> AsyncIterator[Grpc]:
    """gRPC on the features of a gateway that `tests.support.servers.gateway` runs, on a free port."""
    server = GrpcServer(running.gw.grpc_servicer(), host="127.0.0.1", port=0,
                        max_body_bytes=running.gw.core.settings.max_body_bytes)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Grpc(pb_grpc.SpaceCloudStub(channel), server, channel)
    finally:
        await channel.close()
        await server.stop(0)


class LiveStream:
    """A `RealTime` stream with the official clients' cache (§3.4): rows per query, replaced when not older."""

    def __init__(self, stub: SpaceCloudAsyncStub, project: str, alias: str, token: str = "") -> None:
        self.project, self.alias, self.token = project, alias, token
        self._out: asyncio.Queue[pb.RealTimeRequest | None] = asyncio.Queue()
        self.call = stub.RealTime(self._requests())
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.feeds: list[pb.FeedData] = []
        self.responses: list[pb.RealTimeResponse] = []
        self._pending: dict[str, asyncio.Future[pb.RealTimeResponse]] = {}
        self.ended: asyncio.Future[grpc.StatusCode] = asyncio.get_running_loop().create_future()
        self.end_details = ""
        self._reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[pb.RealTimeRequest]:
        while (req := await self._out.get()) is not None:
            yield req

    async def _read(self) -> None:
        code = grpc.StatusCode.OK
        try:
            async for r in self.call:
                self.responses.append(r)
                pending = self._pending.get(r.id)
                if pending is not None and (not r.ack or all(f.type == "initial" for f in r.feedData)):
                    del self._pending[r.id]
                    pending.set_result(r)
                    continue
                for f in r.feedData:
                    self._apply(f)
        except grpc.aio.AioRpcError as exc:
            code, self.end_details = exc.code(), exc.details() or ""
        finally:
            if not self.ended.done():
                self.ended.set_result(code)

    def _apply(self, f: pb.FeedData) -> None:
        self.feeds.append(f)
        rows = self.rows.setdefault(f.queryId, {})
        row = rows.get(f.docId)
        if f.type in ("initial", "insert", "update"):
            if row is None or row["time"] <= f.timeStamp:
                rows[f.docId] = {"time": f.timeStamp, "payload": orjson.loads(f.payload), "deleted": False}
        elif f.type == "delete" and row is not None and row["time"] <= f.timeStamp:
            row.update(time=f.timeStamp, deleted=True)

    def snapshot(self, qid: str) -> dict[str, dict[str, Any]]:
        return {k: r["payload"] for k, r in self.rows.get(qid, {}).items() if not r["deleted"]}

    async def _ask(self, req: pb.RealTimeRequest) -> pb.RealTimeResponse:
        fut: asyncio.Future[pb.RealTimeResponse] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = fut
        await self._out.put(req)
        return await asyncio.wait_for(fut, 10)

    async def subscribe(self, qid: str, col: str, where: dict[str, Any] | None = None, *,
                        raw_where: bytes | None = None, options: bytes = b"", token: str | None = None
                        ) -> pb.RealTimeResponse:
        ack = await self._ask(pb.RealTimeRequest(
            token=self.token if token is None else token, dbType=self.alias, project=self.project, group=col,
            type="realtime-subscribe", id=qid, where=raw_where if raw_where is not None else js(where or {}),
            options=options))
        if ack.ack:
            if ack.reset:
                self.rows.pop(qid, None)
            for f in ack.feedData:
                self._apply(f)
        return ack

    async def unsubscribe(self, qid: str, col: str) -> pb.RealTimeResponse:
        return await self._ask(pb.RealTimeRequest(token=self.token, dbType=self.alias, project=self.project,
                                                  group=col, type="realtime-unsubscribe", id=qid))

    def last_time(self, qid: str) -> int:
        return max([f.timeStamp for f in self.feeds if f.queryId == qid] +
                   [r.time for r in self.responses if r.id == qid], default=0)

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        await wait_for(predicate, timeout)

    async def end_requests(self) -> None:
        """Half-close: the client sends nothing more."""
        await self._out.put(None)

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


Function = Callable[[Any, Any], Awaitable[Any]]


class ServiceStream:
    """A service registered over the `Service` stream, answering calls like the official client does."""

    def __init__(self, stub: SpaceCloudAsyncStub, project: str, token: str = "") -> None:
        self.project, self.token = project, token
        self.functions: dict[str, Function] = {}
        self.calls: list[pb.FunctionsPayload] = []
        self._out: asyncio.Queue[pb.FunctionsPayload | None] = asyncio.Queue()
        self.call = stub.Service(self._requests())
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self.ended: asyncio.Future[grpc.StatusCode] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[pb.FunctionsPayload]:
        while (req := await self._out.get()) is not None:
            yield req

    async def _read(self) -> None:
        code = grpc.StatusCode.OK
        try:
            async for p in self.call:
                if p.type == "service-register" and p.id in self._acks:
                    self._acks.pop(p.id).set_result(orjson.loads(p.params))
                elif p.type == "service-request":
                    self.calls.append(p)
                    task = asyncio.create_task(self._answer(p))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
        finally:
            if not self.ended.done():
                self.ended.set_result(code)

    async def _answer(self, p: pb.FunctionsPayload) -> None:
        fn = self.functions.get(p.function)
        if fn is None:
            await self._out.put(pb.FunctionsPayload(id=p.id, type="service-request", error="Function not registered"))
            return
        try:
            out = await fn(orjson.loads(p.params), orjson.loads(p.auth))
        except Exception as exc:
            await self._out.put(pb.FunctionsPayload(id=p.id, type="service-request", error=str(exc)))
            return
        await self._out.put(pb.FunctionsPayload(id=p.id, type="service-request", params=js(out)))

    async def register(self, service: str, token: str | None = None) -> dict[str, Any]:
        rid = f"reg{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[rid] = fut
        await self._out.put(pb.FunctionsPayload(type="service-register", id=rid, service=service,
                                                project=self.project, token=self.token if token is None else token))
        return await asyncio.wait_for(fut, 10)

    async def end_requests(self) -> None:
        await self._out.put(None)

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
