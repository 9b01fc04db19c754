"""Real servers for tests: a nats-server from the wheel, and the gateway under uvicorn on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import Gateway, build_app
from gateway.config import Config, parse
from gateway.runner import _Server
from mesh.connect import NatsTarget

SECRET = "test-secret-0123456789-0123456789-abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningGateway:
    gw: Gateway
    url: str
    ws_url: str
    port: int


@contextlib.asynccontextmanager
async def gateway(
    config: Config | dict[str, Any], nats_url: str | NatsTarget, *, dev: bool = False,
    settings: dict[str, Any] | None = None, base: Path | None = None, ws_compression: bool = False,
) -> AsyncIterator[RunningGateway]:
    cfg = config if isinstance(config, Config) else parse(config, env={}, base=base)
    """`settings`: overrides of the config's `gateway:` section (`GatewaySettings` attributes); WebSocket
    compression is off unless asked for, as `space-cloud run` has it."""
    cfg.gateway = cfg.gateway.merged(**(settings or {}))
    gw = Gateway(cfg, nats_url=nats_url, dev=dev)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(build_app(gw), lifespan="on", log_level="warning", timeout_graceful_shutdown=1,
                                    ws_per_message_deflate=ws_compression))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        await task
        raise RuntimeError("gateway did not start")
    try:
        yield RunningGateway(gw, f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", port)
    finally:
        server.should_exit = True
        await task
        sock.close()


def project_config(project: str = "p1", *, functions: dict[str, Any] | None = None,
                   crud: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    modules: dict[str, Any] = {"functions": functions if functions is not None else {"enabled": True}}
    if crud is not None:
        modules["crud"] = crud
    return {"projects": [{"id": project, "secret": SECRET, "modules": modules}], **extra}
