"""The gRPC server (`grpc.aio`) that serves `proto.SpaceCloud` for one gateway.

    server = GrpcServer(servicer, host="0.0.0.0", port=4124, max_body_bytes=core.settings.max_body_bytes)
    await server.start()      # after the gateway has started (its NATS connection is up)
    ...
    await server.stop()       # before the gateway stops

Plaintext, like Space Cloud's :4124. The port is not shared (`SO_REUSEPORT` off): a port in use is an
error at start, never a second server silently taking half the connections.
"""

from __future__ import annotations

import logging

import grpc

from common.errors import ServiceUnavailable
from gateway.grpc.servicer import SpaceCloudServicer
from gateway.grpc.stubs import pb_grpc

log = logging.getLogger("space_cloud.grpc")

DEFAULT_PORT = 4124
HEADROOM = 1 << 20
"""What gRPC itself lets in beyond the body limit, so an oversized request gets a `Response` 413 (as over
HTTP) rather than a bare RESOURCE_EXHAUSTED; above limit + headroom gRPC refuses it unread."""


class GrpcServer:
    def __init__(self, servicer: SpaceCloudServicer, *, host: str, port: int, max_body_bytes: int) -> None:
        self.servicer = servicer
        self.host = host
        self.requested_port = port
        self.port = 0
        """The bound port (the requested one, or the one the system chose for 0), once started."""
        self._max_message = max_body_bytes + HEADROOM
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        server = grpc.aio.server(options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", self._max_message),
            ("grpc.max_send_message_length", -1),
        ])
        pb_grpc.add_SpaceCloudServicer_to_server(self.servicer, server)
        target = f"[{self.host}]:{self.requested_port}" if ":" in self.host else f"{self.host}:{self.requested_port}"
        try:
            self.port = server.add_insecure_port(target)
        except RuntimeError as exc:
            raise ServiceUnavailable(f"cannot listen for gRPC on {target} ({exc}): is the port in use?") from None
        if not self.port:
            raise ServiceUnavailable(f"cannot listen for gRPC on {target}: is the port in use?")
        await server.start()
        self._server = server
        log.info("gRPC (proto.SpaceCloud) on %s:%d", self.host, self.port)

    async def stop(self, grace: float = 2.0) -> None:
        """Refuse new rpcs, give the running ones `grace` seconds, then end the streams (their peers close)."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
