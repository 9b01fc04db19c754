"""`space-cloud run`: embedded NATS (unless --nats), the db worker, and the gateway; clean stop on signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from dataclasses import replace
from typing import TYPE_CHECKING

from common.errors import ServiceUnavailable
from gateway.app import Gateway, build_app
from gateway.config import Config
from gateway.serving import RunOptions, uvicorn_config
from gateway.serving import Server as _Server
from gateway.workerproc import WorkerProcess
from mesh import devstate, roles
from mesh.busauth import BusAuth
from mesh.callout import AuthCallout
from mesh.connect import NatsTarget
from mesh.natsd import EmbeddedNats

if TYPE_CHECKING:
    from gateway.grpc.server import GrpcServer
    from worker import DbWorker

__all__ = ["RunOptions", "_Server", "serve"]

log = logging.getLogger("space_cloud")


def _advertised(url: str, listen: str) -> str:
    if listen in ("127.0.0.1", "localhost", "::1"):
        return url
    host = socket.gethostname()
    return url.replace(listen, host, 1)


async def serve(config: Config, opts: RunOptions) -> None:
    config.gateway = config.gateway.merged(**opts.settings)
    bus = _Bus(opts)
    nats_url = await bus.start(project=next(iter(config.projects)), gateway_port=opts.port)
    worker: DbWorker | WorkerProcess | None = None
    try:
        if opts.worker:
            from worker import DbWorker
            from worker.changelog import ChangeLogOptions

            changelog = ChangeLogOptions(log=config.gateway.change_log())
            if opts.worker_process:
                worker = WorkerProcess(bus.worker_target, config.databases(), options=opts.worker_options,
                                       changelog=changelog, log_args=opts.log_args)
            else:
                worker = DbWorker(bus.worker_target, databases=config.databases(), **opts.worker_options,
                                  changelog=changelog)
            await worker.start()
        gw = Gateway(config, nats_url=bus.gateway_target, dev=opts.dev)
        if worker is not None:
            running = worker
            # one /metrics for the gateway and its worker
            gw.core.metrics.registry.include(worker if isinstance(worker, WorkerProcess) else worker.metrics.registry)
            gw.core.config_listeners.append(lambda cfg: running.update(cfg.databases()))
        if opts.dev:
            log.warning("--dev: the config API and Mission Control need no admin login; never use this in production")
        server = _Server(uvicorn_config(build_app(gw), config, opts))
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        grpc: GrpcServer | None = None

        def on_signal() -> None:
            if stopping.is_set():
                server.force_exit = True
                server.should_exit = True
            stopping.set()

        async def stop_in_order() -> None:
            """gRPC first (its rpcs need the gateway), then uvicorn, whose shutdown stops the gateway."""
            await stopping.wait()
            if grpc is not None:
                await grpc.stop()
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        siblings, listening = None, None
        if opts.processes > 1:
            from gateway import processes

            listening = processes.reuse_port_socket(opts.host, opts.port)
            siblings = processes.start(opts.processes - 1, config, opts, bus.gateway_target, opts.log_args)
        main = asyncio.create_task(server.serve(sockets=[listening] if listening is not None else None))
        stopper = asyncio.create_task(stop_in_order())
        while not server.started and not main.done():  # noqa: ASYNC110 (uvicorn exposes no event)
            await asyncio.sleep(0.05)
        grpc_error = None
        if server.started:
            try:
                grpc = await _start_grpc(gw, opts, config)
            except ServiceUnavailable as exc:
                grpc_error = f"gRPC: {exc.message} (--grpc-port N for another port, --no-grpc for none)"
                stopping.set()
        if server.started and grpc_error is None:
            gc.collect()
            gc.freeze()
            _banner(config, opts, nats_url, bus.embedded is not None, grpc)
        try:
            await main
        finally:
            if siblings is not None:
                await asyncio.get_running_loop().run_in_executor(None, siblings.stop)
            if listening is not None:
                listening.close()
            stopper.cancel()
            if grpc is not None:
                await grpc.stop(0)
        if grpc_error is not None:
            raise SystemExit(grpc_error)
    finally:
        if worker is not None:
            await worker.stop()
        await bus.stop()
        log.info("stopped")


class _Bus:
    """The NATS this run uses: the embedded one (generated credentials, per-role permissions, a
    workspace reused across restarts, the dev-state file for local services) or the one of `--nats`."""

    def __init__(self, opts: RunOptions) -> None:
        self._opts = opts
        self.embedded: EmbeddedNats | None = None
        self._workspace: devstate.Workspace | None = None
        self._callout: AuthCallout | None = None
        self.gateway_target = NatsTarget("")
        self.worker_target = NatsTarget("")

    async def start(self, *, project: str, gateway_port: int) -> str:
        opts = self._opts
        if opts.nats_url:
            base = replace(opts.nats_auth, url=opts.nats_url) if opts.nats_auth else NatsTarget(opts.nats_url)
            # One process, one identity: with an in-process worker it needs both roles' permissions.
            self.gateway_target = base.with_inbox(base.inbox_prefix or str(roles.gateway().inbox))
            self.worker_target = base.with_inbox(base.inbox_prefix or str(roles.worker().inbox))
            return opts.nats_url
        home = opts.state_home
        old = devstate.stale(home=home)
        if old is not None:
            log.info("replacing the dev-state file a stopped run (pid %s) left", old.get("pid"))
        self._workspace = workspace = devstate.claim_workspace(home)
        auth = BusAuth.generate()
        try:
            self.embedded = embedded = EmbeddedNats(host=opts.nats_listen, port=workspace.remembered_port() or -1,
                                                    work_dir=workspace.path, auth=auth)
            url = await embedded.astart()
            workspace.remember(port=embedded.port, nats_pid=embedded.pid)
            self._callout = AuthCallout(auth.auth_target(url), issuer=auth.issuer,
                                        service_password=auth.service_password)
            await self._callout.start()
        except BaseException:
            await self.stop()
            raise
        self.gateway_target = auth.gateway_target(url)
        self.worker_target = auth.worker_target(url)
        devstate.write({"nats_url": url, "project": project, "port": gateway_port,
                        "service_password": auth.service_password}, home=home)
        return url

    async def stop(self) -> None:
        if self.embedded is not None:
            devstate.remove(home=self._opts.state_home)
        if self._callout is not None:
            await self._callout.stop()
            self._callout = None
        if self.embedded is not None:
            await self.embedded.astop()
            self.embedded = None
        if self._workspace is not None:
            self._workspace.forget_server()
            self._workspace.release()
            self._workspace = None


async def _start_grpc(gw: Gateway, opts: RunOptions, config: Config) -> GrpcServer | None:
    """The gRPC server on the gateway's features; None with --no-grpc, or when the default port is taken."""
    if opts.grpc_port is None:
        return None
    from gateway.grpc.server import GrpcServer

    grpc = GrpcServer(gw.grpc_servicer(), host=opts.host, port=opts.grpc_port,
                      max_body_bytes=config.gateway.max_body_bytes)
    try:
        await grpc.start()
    except ServiceUnavailable as exc:
        if opts.grpc_port_given:
            raise
        log.warning("no gRPC: %s (--grpc-port N for another port)", exc.message)
        return None
    return grpc


def _banner(config: Config, opts: RunOptions, nats_url: str, embedded: bool, grpc: GrpcServer | None = None) -> None:
    shown = "localhost" if opts.host in ("0.0.0.0", "::") else opts.host
    lines = [f"space-cloud gateway on http://{shown}:{opts.port}  (projects: {', '.join(config.projects)})"]
    if grpc is not None:
        lines.append(f"gRPC (proto.SpaceCloud) on {shown}:{grpc.port}")
    if embedded:
        lines.append(f"embedded NATS: {_advertised(nats_url, opts.nats_listen)}")
        if opts.nats_listen == "127.0.0.1":
            lines.append("  services on this machine find it by themselves; other machines: --nats-listen 0.0.0.0")
        else:
            lines.append(f"  services elsewhere: SPACE_CLOUD_NATS={_advertised(nats_url, opts.nats_listen)}, "
                         "SPACE_CLOUD_NATS_USER=<service name>, SPACE_CLOUD_NATS_PASSWORD=<service_password in "
                         f"{devstate.state_path(opts.state_home)}>")
    else:
        lines.append(f"NATS: {nats_url}")
    if config.is_dev_default:
        lines.append("development config (no --config): every request is allowed; data in ./space-cloud.db")
    for line in lines:
        print(line, flush=True)
