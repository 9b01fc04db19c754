"""Every rpc of `proto.SpaceCloud`, over the features HTTP and the WebSocket use.

Unary rpcs build the body an HTTP client would send and hand it to the same entry point
(`Crud.run`, `Functions.invoke`, `Users.*`), so validation, rules, redaction and errors are those of
HTTP; the answer is a `Response` with the HTTP status (never a gRPC error status, as in Space Cloud).
The `RealTime` and `Service` streams are peers of the live-query manager and the service bridge,
exactly like a WebSocket (`gateway.grpc.peers`). Files and pub/sub answer 501 until those modules exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from common.errors import BadRequest, NotImplementedYet, PayloadTooLarge
from gateway import dbrequests
from gateway.bridge import Bridge
from gateway.core import Core
from gateway.crud import Crud
from gateway.functions import DEFAULT_TIMEOUT_MS, Functions
from gateway.grpc import convert
from gateway.grpc.convert import ABSENT, body, json_object, json_value, token
from gateway.grpc.peers import RealtimePeer, ServicePeer, StreamPeer
from gateway.grpc.stubs import pb, pb_grpc
from gateway.live.manager import LiveQueries
from gateway.users import Users
from mesh import subjects

log = logging.getLogger("space_cloud.grpc")

Req = TypeVar("Req", bound=Message)
P = TypeVar("P", bound=StreamPeer[Any])
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[P, Req], Coroutine[Any, Any, None]]

NO_FILES = NotImplementedYet("file storage (Space Cloud's fileStore module) is not available on this server yet")
NO_PUBSUB = NotImplementedYet("pub/sub (Space Cloud's pubsub module) is not available on this server yet")


class SpaceCloudServicer(pb_grpc.SpaceCloudServicer):
    def __init__(self, core: Core, *, crud: Crud, functions: Functions, users: Users, live: LiveQueries,
                 bridge: Bridge) -> None:
        self.core = core
        self.crud = crud
        self.functions = functions
        self.users = users
        self.live = live
        self.bridge = bridge

    # -- plumbing -------------------------------------------------------------------------------

    def _bounded(self, request: Message) -> None:
        limit = self.core.settings.max_body_bytes
        if request.ByteSize() > limit:
            raise PayloadTooLarge(f"request is larger than the limit of {limit} bytes")

    async def _answer(self, request: Message, work: Callable[[], Awaitable[Any]]) -> pb.Response:
        try:
            self._bounded(request)
            return convert.ok(await work())
        except Exception as exc:
            return convert.failure(exc)

    @staticmethod
    def _meta(request: Any) -> pb.Meta:
        if not request.HasField("meta"):
            raise BadRequest("`meta` (project, dbType, col, token) is required")
        meta: pb.Meta = request.meta
        return meta

    async def _crud(self, request: Any, kind: str, make_body: Callable[[], dict[str, Any]]) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            project = self.core.project(meta.project)
            db = dbrequests.database(project, meta.dbType)
            result = await self.crud.run(project, db, meta.col, kind, make_body(), token(meta.token))
            return ABSENT if result is None else result

        return await self._answer(request, work)

    # -- the database module -------------------------------------------------------------------

    async def Create(self, request: pb.CreateRequest, context: Context) -> pb.Response:
        return await self._crud(request, "create", lambda: body(
            request.operation, doc=json_value(request.document, "document")))

    async def Read(self, request: pb.ReadRequest, context: Context) -> pb.Response:
        return await self._crud(request, "read", lambda: body(
            request.operation, find=json_object(request.find, "find"), options=convert.read_options(request)))

    async def Update(self, request: pb.UpdateRequest, context: Context) -> pb.Response:
        return await self._crud(request, "update", lambda: body(
            request.operation, find=json_object(request.find, "find"),
            update=json_object(request.update, "update") if request.update.strip() else ABSENT))

    async def Delete(self, request: pb.DeleteRequest, context: Context) -> pb.Response:
        return await self._crud(request, "delete", lambda: body(
            request.operation, find=json_object(request.find, "find")))

    async def Aggregate(self, request: pb.AggregateRequest, context: Context) -> pb.Response:
        return await self._crud(request, "aggr", lambda: body(
            request.operation, pipe=json_value(request.pipeline, "pipeline")))

    async def Batch(self, request: pb.BatchRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            project = self.core.project(meta.project)
            db = dbrequests.database(project, meta.dbType)
            await self.crud.run_batch(project, db, convert.batch_body(request), token(meta.token))
            return ABSENT

        return await self._answer(request, work)

    # -- functions -------------------------------------------------------------------------------

    async def Call(self, request: pb.FunctionsRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            project = self.functions.project(request.project)
            service = subjects.check_name("service", request.service)
            func = subjects.check_name("function", request.function)
            params = json_value(request.params, "params")
            return await self.functions.invoke(project, service, func, params, token(request.token),
                                               timeout=self._timeout(request.timeout))

        return await self._answer(request, work)

    def _timeout(self, seconds: int) -> float:
        """`FunctionsRequest.timeout` is seconds (Space Cloud's gRPC clients send 5); 0 (unset) is the default."""
        if seconds < 0:
            raise BadRequest("`timeout` must be a positive number of seconds")
        chosen = float(seconds) if seconds else DEFAULT_TIMEOUT_MS / 1000
        return min(chosen, self.core.settings.max_function_timeout)

    # -- email users ----------------------------------------------------------------------------

    async def SignUp(self, request: pb.SignUpRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            fields = {"email": request.email, "name": request.name, "pass": request.password}
            if request.role:
                fields["role"] = request.role
            return await self.users.signup(meta.project, meta.dbType, fields, client=convert.peer_host(context.peer()))

        return await self._answer(request, work)

    async def SignIn(self, request: pb.SignInRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            fields = {"email": request.email, "pass": request.password}
            return await self.users.signin(meta.project, meta.dbType, fields, client=convert.peer_host(context.peer()))

        return await self._answer(request, work)

    async def Profile(self, request: pb.ProfileRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            return await self.users.profile(meta.project, meta.dbType, request.id, token(meta.token))

        return await self._answer(request, work)

    async def Profiles(self, request: pb.ProfilesRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            return (await self.users.profiles(meta.project, meta.dbType, token(meta.token)))["users"]

        return await self._answer(request, work)

    async def EditProfile(self, request: pb.EditProfileRequest, context: Context) -> pb.Response:
        async def work() -> Any:
            meta = self._meta(request)
            changes = {"email": request.email, "name": request.name, "pass": request.password}
            return await self.users.edit(meta.project, meta.dbType, request.id,
                                         {k: v for k, v in changes.items() if v}, token(meta.token))

        return await self._answer(request, work)

    # -- the streams ----------------------------------------------------------------------------

    async def RealTime(self, request_iterator: AsyncIterator[pb.RealTimeRequest], context: Context
                       ) -> AsyncIterator[pb.RealTimeResponse]:
        peer = RealtimePeer(max_queue=self.core.settings.ws_queue)
        async for message in self._stream(peer, request_iterator, context, self._on_realtime, self.live.on_close):
            yield message

    async def _on_realtime(self, peer: RealtimePeer, req: pb.RealTimeRequest) -> None:
        try:
            self._bounded(req)
            handler = {"realtime-subscribe": self.live.on_subscribe,
                       "realtime-unsubscribe": self.live.on_unsubscribe}.get(req.type)
            if handler is None:
                raise BadRequest(f"unknown type {req.type!r}: use realtime-subscribe or realtime-unsubscribe")
            data = {"id": req.id, "group": req.group, "dbType": req.dbType, "project": req.project,
                    "token": token(req.token), "where": json_object(req.where, "where"),
                    "options": json_object(req.options, "options")}
            await handler(peer, req.id, data)
        except Exception as exc:
            _, message = convert.status_of(exc)
            peer.reply(req.id, req.type, {"id": req.id, "group": req.group, "ack": False, "error": message})

    async def Service(self, request_iterator: AsyncIterator[pb.FunctionsPayload], context: Context
                      ) -> AsyncIterator[pb.FunctionsPayload]:
        peer = ServicePeer(max_queue=self.core.settings.ws_queue)
        async for message in self._stream(peer, request_iterator, context, self._on_service, self.bridge.on_close):
            yield message

    async def _on_service(self, peer: ServicePeer, req: pb.FunctionsPayload) -> None:
        try:
            self._bounded(req)
            if req.type == "service-register":
                data = {"service": req.service, "project": req.project, "token": token(req.token)}
                await self.bridge.on_register(peer, req.id, data)
            elif req.type == "service-request":
                try:
                    answer = {"id": req.id, "params": json_value(req.params, "params"), "error": req.error}
                except BadRequest:
                    answer = {"id": req.id, "error": "the service answered with malformed JSON in `params`"}
                await self.bridge.on_reply(peer, req.id, answer)
            else:
                raise BadRequest(f"unknown type {req.type!r}: use service-register or service-request")
        except Exception as exc:
            _, message = convert.status_of(exc)
            peer.reply(req.id, req.type, {"ack": False, "error": message})

    async def _stream(self, peer: P, requests: AsyncIterator[Req], context: Context,
                      dispatch: Handler[P, Req], on_close: Callable[[P], Awaitable[None]]
                      ) -> AsyncIterator[Any]:
        """Read requests (each handled in its own task, as on the WebSocket) while yielding what the peer
        queues. The stream ends when the client ends its side (after the requests in flight), when the
        client goes away, or when it reads too slowly; then the close hook forgets the peer."""
        reader = asyncio.create_task(self._read(peer, requests, dispatch, self.core.settings.socket_requests))
        background: set[asyncio.Task[None]] = set()

        def spawn(work: Coroutine[Any, Any, None]) -> None:
            task = asyncio.create_task(work)
            background.add(task)
            task.add_done_callback(background.discard)

        async def forget() -> None:
            if peer.closed:
                return
            peer.closed = True
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            try:
                await on_close(peer)
            except Exception:
                log.exception("gRPC stream close hook failed")

        # A slow consumer's writer may be stuck in a write the client never reads (nor a status queued behind
        # it): its rpc is cancelled from outside, nothing more is sent, and the client's call ends when it
        # gives up. The peer is forgotten when the rpc ends, whoever ends it.
        rpc = asyncio.current_task()
        if rpc is not None:
            peer.on_overflow = rpc.cancel
        context.add_done_callback(lambda _: spawn(forget()))  # type: ignore[arg-type]  # (the stub wants a class)
        try:
            async for message in peer.outgoing():
                yield message
            if peer.ended_by is not None:
                await context.abort(*peer.ended_by)
        finally:
            await forget()

    @staticmethod
    async def _read(peer: P, requests: AsyncIterator[Req], dispatch: Handler[P, Req], max_in_flight: int) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            async for req in requests:
                if len(tasks) >= max_in_flight:
                    req_id, type_ = getattr(req, "id", ""), getattr(req, "type", "")
                    peer.reply(req_id, type_, {"id": req_id, "ack": False, "error": "too many requests in flight on "
                                               f"this stream (at most {max_in_flight}): wait for answers"})
                    continue
                task = asyncio.create_task(dispatch(peer, req))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except Exception as exc:  # the client went away mid-read: the rpc is being cancelled
            log.debug("gRPC stream %s: %s", peer.id, exc)
        finally:
            if tasks:
                await asyncio.wait(set(tasks))
            peer.end()

    # -- not (yet) on this server ----------------------------------------------------------------

    async def CreateFolder(self, request: pb.CreateFolderRequest, context: Context) -> pb.Response:
        return convert.failure(NO_FILES)

    async def ListFiles(self, request: pb.ListFilesRequest, context: Context) -> pb.Response:
        return convert.failure(NO_FILES)

    async def DeleteFile(self, request: pb.DeleteFileRequest, context: Context) -> pb.Response:
        return convert.failure(NO_FILES)

    async def UploadFile(self, request_iterator: AsyncIterator[pb.UploadFileRequest], context: Context
                         ) -> pb.Response:
        return convert.failure(NO_FILES)

    async def DownloadFile(self, request: pb.DownloadFileRequest, context: Context) -> AsyncIterator[pb.FilePayload]:
        yield pb.FilePayload(status=NO_FILES.status, error=NO_FILES.message)

    async def PubsubPublish(self, request: pb.PubsubPublishRequest, context: Context) -> pb.Response:
        return convert.failure(NO_PUBSUB)

    async def PubsubSubscribe(self, request_iterator: AsyncIterator[pb.PubsubSubscribeRequest], context: Context
                              ) -> AsyncIterator[pb.PubsubMsgResponse]:
        async for req in request_iterator:
            yield pb.PubsubMsgResponse(id=req.id, type=req.type, status=NO_PUBSUB.status, error=NO_PUBSUB.message)
