"""The `space-cloud` command: run, worker, init."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway import __version__
from gateway.config import Config, ConfigError, dev_config, load
from mesh import logs, roles
from mesh.connect import NatsTarget
from mesh.loop import run as run_main

if TYPE_CHECKING:
    from worker.changelog import ChangeLogOptions

STARTER = """\
# space-cloud config (Space Cloud v0.10-v0.12 shape). Values written as $NAME come from the environment.
projects:
  - id: myproject                 # the <project> in /v1/api/<project>/...
    name: My project
    secret: $SC_SECRET            # signs user tokens (HS256); at least 8 characters
    modules:
      crud:
        sqlite:                   # the alias in /crud/<alias>/...; also: mongo, sql-postgres, sql-mysql
          type: sqlite            # mongo | postgres | mysql | sqlite
          conn: app.db            # postgresql://user@host/db, mysql://root@host/db, mongodb://host/db
          collections:
            todos:
              isRealtimeEnabled: true
              indexes: [userId]   # every read below filters on it (docs/database-adapters.md)
              rules:              # no rule = deny
                create: {rule: match, eval: "==", type: string, f1: args.auth.id, f2: args.doc.userId}
                read:   {rule: match, eval: "==", type: string, f1: args.auth.id, f2: args.find.userId}
                update:
                  rule: and
                  clauses:
                    - {rule: match, eval: "==", type: string, f1: args.auth.id, f2: args.find.userId}
                    - {rule: protected, fields: [userId]}   # owners cannot give todos away
                delete: {rule: match, eval: "==", type: string, f1: args.auth.id, f2: args.find.userId}
            users:                # email sign-up/sign-in keep profiles here (password hashes live apart)
              rules:              # each user reads only their own profile (id is `_id` on Mongo)
                read: {rule: match, eval: "==", type: string, f1: args.auth.id, f2: args.find.id}
      auth:
        email: {enabled: true}
        tokenTTL: 604800          # seconds a user token stays valid
      functions:
        enabled: true
        services:
          default:
            functions:
              default: {rule: {rule: authenticated}}
            register: {rule: deny}   # who may register a service over the WebSocket
admin:
  users:
    - user: admin
      pass: $ADMIN_PASS
  secret: $ADMIN_SECRET
gateway:
  maxBodyBytes: 1048576
"""


DEFAULT_GRPC_PORT = 4124


def _load(path: str | None) -> Config:
    home = os.environ.get("SPACE_CLOUD_HOME")
    return load(path) if path else dev_config(home=Path(home) if home else None)


NATS_ENV = {
    "creds": "SPACE_CLOUD_NATS_CREDS", "nkey": "SPACE_CLOUD_NATS_NKEY", "token": "SPACE_CLOUD_NATS_TOKEN",
    "user": "SPACE_CLOUD_NATS_USER", "password": "SPACE_CLOUD_NATS_PASSWORD", "tls_ca": "SPACE_CLOUD_NATS_TLS_CA",
    "tls_cert": "SPACE_CLOUD_NATS_TLS_CERT", "tls_key": "SPACE_CLOUD_NATS_TLS_KEY",
}
"""The environment variable each `--nats-*` credential flag defaults to (secrets belong there, not in argv)."""


def _nats_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("NATS credentials and TLS", "for --nats; a token or password only from the "
                             "environment (SPACE_CLOUD_NATS_TOKEN, SPACE_CLOUD_NATS_PASSWORD); each role's "
                             "permissions: docs/security.md")
    g.add_argument("--nats-creds", metavar="FILE", help="a .creds file (user JWT + nkey seed) [SPACE_CLOUD_NATS_CREDS]")
    g.add_argument("--nats-nkey", metavar="FILE", help="a file with an nkey seed [SPACE_CLOUD_NATS_NKEY]")
    g.add_argument("--nats-user", metavar="USER", help="user name [SPACE_CLOUD_NATS_USER]; the password comes "
                   "from SPACE_CLOUD_NATS_PASSWORD")
    g.add_argument("--nats-tls-ca", metavar="FILE", help="CA bundle that signed the server [SPACE_CLOUD_NATS_TLS_CA]")
    g.add_argument("--nats-tls-cert", metavar="FILE", help="client certificate [SPACE_CLOUD_NATS_TLS_CERT]")
    g.add_argument("--nats-tls-key", metavar="FILE", help="its private key [SPACE_CLOUD_NATS_TLS_KEY]")


def _nats_auth(args: argparse.Namespace, env: Mapping[str, str]) -> NatsTarget | None:
    """Credentials and TLS from the flags, else the environment; None when there are none."""
    def value(key: str) -> str | None:
        return getattr(args, f"nats_{key}", None) or env.get(NATS_ENV[key]) or None

    fields = {key: value(key) for key in NATS_ENV}
    if not any(fields.values()):
        return None
    return NatsTarget(args.nats or "", user=fields["user"], password=fields["password"], token=fields["token"],
                      creds_file=fields["creds"], nkey_file=fields["nkey"], tls_ca=fields["tls_ca"],
                      tls_cert=fields["tls_cert"], tls_key=fields["tls_key"])


def _log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=list(logs.FORMATS),
                   help="text lines, or one JSON object per line (default text); each names its request id")


def _db_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("db worker", "limits per database alias (the in-process worker of `run`, or `worker`)")
    g.add_argument("--db-concurrency", type=int, default=64, metavar="N",
                   help="requests run at once per database alias (default 64)")
    g.add_argument("--db-queue", type=int, default=256, metavar="N",
                   help="requests waiting per alias beyond that; more are refused with 503 (default 256)")
    g.add_argument("--db-connect-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long connecting to a database may take before its breaker opens (default 5)")


def _changelog(config: Config, env: Mapping[str, str]) -> ChangeLogOptions:
    """The worker's change log settings: the config's `gateway:` section, and the fault tests' hook."""
    from worker.changelog import EXIT_AFTER_COMMITS_ENV, ChangeLogOptions

    exit_after = env.get(EXIT_AFTER_COMMITS_ENV, "")
    return ChangeLogOptions(log=config.gateway.change_log(),
                            exit_after_commits=int(exit_after) if exit_after.isdigit() else None)


def _worker_process(asked: bool | None) -> bool:
    """`--worker-process` as given, else on when this process may run on more than one core."""
    if asked is not None:
        return asked
    return len(os.sched_getaffinity(0)) > 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) > 1


def _worker_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"alias_concurrency": args.db_concurrency, "alias_queue": args.db_queue,
            "connect_timeout": args.db_connect_timeout}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="space-cloud",
        description="Realtime data access layer and function mesh over NATS (Space Cloud compatible).",
    )
    p.add_argument("--version", action="version", version=f"space-cloud {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the gateway (with an embedded NATS and db worker by default)",
                         description="Start the gateway. With no --nats, an embedded nats-server starts on a free "
                         "loopback port; with no --config, a development config on ./space-cloud.db serves.")
    run.add_argument("--port", type=int, default=4122, help="HTTP/WebSocket port (default 4122)")
    grpc = run.add_mutually_exclusive_group()
    grpc.add_argument("--grpc-port", type=int, metavar="N", help="gRPC port, Space Cloud's proto.SpaceCloud (default "
                      "4124; when 4124 is taken and no port is given, gRPC is off with a warning)")
    grpc.add_argument("--no-grpc", action="store_true", help="do not serve gRPC")
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    run.add_argument("--nats", metavar="URL", help="use this NATS (or comma-separated cluster URLs) instead of "
                     "starting one")
    run.add_argument("--nats-listen", default="127.0.0.1", metavar="ADDR",
                     help="address the embedded NATS listens on (default 127.0.0.1)")
    run.add_argument("--config", metavar="FILE", help="Space Cloud-shaped YAML or JSON config")
    run.add_argument("--dev", action="store_true", help="relax admin/config-API auth (never in production)")
    run.add_argument("--no-worker", action="store_true", help="do not run a db worker in this process")
    run.add_argument("--worker-process", action=argparse.BooleanOptionalAction, default=None,
                     help="the db worker in a process of its own, beside the gateway (default: on when the machine "
                          "has more than one core; --no-worker-process keeps it in the gateway's process)")
    run.add_argument("--processes", type=int, default=1, metavar="N",
                     help="gateway processes sharing the HTTP/WebSocket port (SO_REUSEPORT), for fan-out on more "
                     "than one core (default 1; see docs/realtime.md)")
    run.add_argument("--ws-compression", action="store_true",
                     help="offer permessage-deflate on WebSockets (off: cheaper fan-out of small frames)")
    run.add_argument("--proxy-headers", action="store_true",
                     help="trust X-Forwarded-For/-Proto (only behind a reverse proxy you control)")
    run.add_argument("--db-timeout", type=float, metavar="SECONDS",
                     help="how long the gateway waits for the db worker (config gateway.dbTimeout; default 10)")
    run.add_argument("--change-retention", type=float, metavar="SECONDS",
                     help="how long change events are kept for clients that resume (gateway.changeRetention; "
                     "default 3600)")
    run.add_argument("--ws-queue", type=int, metavar="FRAMES",
                     help="frames queued per WebSocket before a slow consumer is closed (gateway.wsQueue; "
                     "default 1024)")
    run.add_argument("--service-concurrency", type=int, metavar="N",
                     help="calls in flight from this gateway to one service before 503 (gateway.serviceConcurrency; "
                     "default 256)")
    _log_flags(run)
    _db_flags(run)
    _nats_flags(run)

    worker = sub.add_parser("worker", help="run a db worker alone (several may run; NATS balances them)")
    worker.add_argument("--nats", metavar="URL", required=True, help="the NATS the gateways use")
    worker.add_argument("--config", metavar="FILE", help="the same config the gateways use")
    worker.add_argument("--metrics-port", type=int, metavar="N",
                        help="serve GET /metrics (Prometheus) and GET /healthz on this port (default: none)")
    worker.add_argument("--metrics-host", default="0.0.0.0", metavar="ADDR",
                        help="address of the metrics port (default 0.0.0.0)")
    _log_flags(worker)
    _db_flags(worker)
    _nats_flags(worker)

    init = sub.add_parser("init", help="write a commented starter config")
    init.add_argument("--out", default="config.yaml", help="file to write (default config.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    if args.command == "init":
        out = Path(args.out)
        if out.exists() and not args.force:
            print(f"{out} exists; use --force to overwrite", file=sys.stderr)
            return 1
        out.write_text(STARTER)
        print(f"wrote {out}: set SC_SECRET, ADMIN_PASS and ADMIN_SECRET, then `space-cloud run --config {out}`")
        return 0
    logs.configure(args.log_level, args.log_format)
    try:
        config = _load(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    if args.command == "run":
        from gateway.runner import RunOptions, serve

        opts = RunOptions(host=args.host, port=args.port, nats_url=args.nats, nats_listen=args.nats_listen,
                          worker=not args.no_worker, worker_process=_worker_process(args.worker_process),
                          dev=args.dev, log_level=args.log_level,
                          state_home=os.environ.get("SPACE_CLOUD_HOME"), proxy_headers=args.proxy_headers,
                          ws_compression=args.ws_compression, nats_auth=_nats_auth(args, os.environ),
                          grpc_port=None if args.no_grpc else DEFAULT_GRPC_PORT if args.grpc_port is None
                          else args.grpc_port,
                          grpc_port_given=args.grpc_port is not None,
                          worker_options=_worker_options(args),
                          processes=max(1, args.processes), log_args=(args.log_level, args.log_format),
                          settings={"db_timeout": args.db_timeout, "change_retention": args.change_retention,
                                    "ws_queue": args.ws_queue, "service_concurrency": args.service_concurrency})
        run_main(serve(config, opts))
        return 0
    from worker import run_worker

    target = _nats_auth(args, os.environ) or NatsTarget(args.nats)
    run_main(run_worker(target.with_inbox(str(roles.worker().inbox)), config.databases(), **_worker_options(args),
                        metrics_port=args.metrics_port, metrics_host=args.metrics_host,
                        changelog=_changelog(config, os.environ)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
