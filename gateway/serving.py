"""How the gateway is served: `space-cloud run`'s options and uvicorn's settings, shared by the runner
and its `--processes` siblings (`gateway.processes`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gateway.config import Config
from mesh.connect import NatsTarget


@dataclass
class RunOptions:
    host: str = "0.0.0.0"
    port: int = 4122
    nats_url: str | None = None
    nats_auth: NatsTarget | None = None
    """Credentials and TLS for `nats_url` (its own `url` is not used)."""
    nats_listen: str = "127.0.0.1"
    worker: bool = True
    worker_process: bool = False
    """The db worker in a process of its own (`--worker-process`; the CLI's default with 2+ cores)."""
    dev: bool = False
    log_level: str = "info"
    state_home: str | None = None
    proxy_headers: bool = False
    ws_compression: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    """CLI overrides of the config file's `gateway:` section (`GatewaySettings` attribute -> value)."""
    worker_options: dict[str, Any] = field(default_factory=dict)
    """`DbWorker` keyword arguments for the in-process worker (per-alias limits)."""
    grpc_port: int | None = 4124
    """gRPC (`proto.SpaceCloud`) port; None: no gRPC (`--no-grpc`)."""
    grpc_port_given: bool = False
    """`--grpc-port` was given: that port in use is an error. The default port in use only turns gRPC off."""
    processes: int = 1
    """Gateway processes sharing the HTTP/WebSocket port (`--processes`)."""
    log_args: tuple[str, str] = ("info", "text")
    """(level, format) of the CLI's logging, for sibling processes."""


class Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner decides how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def uvicorn_config(app: Any, config: Config, opts: RunOptions) -> uvicorn.Config:
    """How uvicorn serves the gateway (the first process and its `--processes` siblings alike)."""
    return uvicorn.Config(
        app,
        host=opts.host,
        port=opts.port,
        log_level=opts.log_level,
        log_config=None,  # the CLI set logging up (text or JSON, with request ids)
        lifespan="on",
        http="httptools",
        access_log=False,
        proxy_headers=opts.proxy_headers,
        timeout_graceful_shutdown=5,
        ws_max_size=config.gateway.max_body_bytes,
        # Live-query frames are small and go to many sockets: compressing each one for each
        # socket costs more CPU than it saves on a LAN. `--ws-compression` turns it on.
        ws_per_message_deflate=opts.ws_compression,
    )
