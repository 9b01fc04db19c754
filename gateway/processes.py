"""More than one core for one gateway: sibling gateway processes on the same port (`--processes N`).

Each process is a whole gateway (its own event loop, NATS connection, live queries and sockets)
listening on the same address with `SO_REUSEPORT`, so the kernel spreads new connections over them;
gateways hold no state another gateway needs (live queries read the change log themselves), so N
processes behave as N gateways behind a load balancer, on one port. The first process keeps what
exists once (the embedded NATS, the db worker, gRPC, Mission Control's config write-back); the
siblings serve HTTP and WebSockets only, and end with it.

What a config edit through the config API changes reaches the process that took the request; the
others see it after a restart (as with several gateways).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from mesh.connect import NatsTarget

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.serving import RunOptions

log = logging.getLogger("space_cloud")


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket that other processes may bind to the same address too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Siblings:
    processes: list[BaseProcess] = field(default_factory=list)

    def stop(self, timeout: float = 8.0) -> None:
        for p in self.processes:
            if p.is_alive() and p.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in self.processes:
            p.join(timeout)
            if p.is_alive():
                p.kill()
                p.join()
        self.processes.clear()


def start(count: int, config: Config, opts: RunOptions, target: NatsTarget, log_args: tuple[str, str]
          ) -> Siblings:
    """`count` sibling gateways (spawned, not forked: the parent's loop and NATS connection stay its own)."""
    ctx = multiprocessing.get_context("spawn")
    out = Siblings()
    for n in range(count):
        p = ctx.Process(target=_sibling, name=f"space-cloud-gateway-{n + 2}", daemon=True,
                        args=(config, opts, target, log_args, os.getpid()))
        p.start()
        out.processes.append(p)
    return out


def _sibling(config: Config, opts: RunOptions, target: NatsTarget, log_args: tuple[str, str], parent: int) -> None:
    from mesh import logs
    from mesh.loop import run as run_main

    logs.configure(*log_args)
    run_main(_serve(config, opts, target, parent))


async def _serve(config: Config, opts: RunOptions, target: NatsTarget, parent: int) -> None:
    from gateway.app import Gateway, build_app
    from gateway.serving import Server, uvicorn_config

    gw = Gateway(config, nats_url=target, dev=opts.dev)
    server = Server(uvicorn_config(build_app(gw), config, opts))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    async def orphaned() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 (the parent's death sends nothing)
            await asyncio.sleep(1.0)
        stop()

    watch = asyncio.create_task(orphaned())
    sock = reuse_port_socket(opts.host, opts.port)
    main = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not main.done():  # noqa: ASYNC110 (uvicorn exposes no event)
        await asyncio.sleep(0.05)
    if server.started:
        gc.collect()
        gc.freeze()
    try:
        await main
    finally:
        watch.cancel()
        sock.close()
