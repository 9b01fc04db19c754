"""Who may publish and subscribe to what on the bus: one permission set per role.

The embedded nats-server is configured from this table (gateway, worker and the auth callout as
users, every service through the callout), `docs/security.md` documents it and
`deploy/nats-auth.conf` is checked against it. A role gets what it does and nothing more:

- **gateway**: requests to the db workers and to every service, discovery, the JetStream API (the
  change log), change events, and the subjects of services registered over a WebSocket (they run
  in its connection).
- **worker**: serves db requests, publishes change events (into the change log, whose stream it may
  look up and create).
- **service** `<name>`: serves its own functions (any project), calls any function, answers
  discovery about itself. Never db subjects, change events, other services' subjects or anyone
  else's replies.
- **auth**: the auth callout's own connection: reads authorization requests, answers them.

Every role reads replies only in its own inbox (`subjects.inbox_prefix`) and answers requests
through `allow_responses` (one reply to a request it received), never by publishing to inboxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import subjects
from .changelog import STREAM

DB_WORKER_SERVICE = "sc-db"
"""The db worker's micro-service name (`worker.service.SERVICE_NAME`): what it answers discovery as."""

AUTH_CALLOUT_SUBJECT = "$SYS.REQ.USER.AUTH"
"""Where nats-server asks the auth callout about a connection."""

CHANGE_LOG_API = (f"$JS.API.STREAM.INFO.{STREAM}", f"$JS.API.STREAM.CREATE.{STREAM}")
"""What the worker asks JetStream: whether the change log exists, and to create it when it does not."""

RESPONSE_TTL_S = 600
"""How long after a request its receiver may still answer it (a call never waits that long)."""


@dataclass(frozen=True)
class Permissions:
    role: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    inbox: str | None
    """The connection's inbox prefix (already in `publish` and `subscribe`), None for the callout."""
    responses: bool = True

    def server_config(self) -> dict[str, Any]:
        """As `permissions` of a user in a nats-server config."""
        out: dict[str, Any] = {"subscribe": {"allow": list(self.subscribe)}}
        if self.publish:
            out["publish"] = {"allow": list(self.publish)}
        if self.responses:
            out["allow_responses"] = {"max": 1, "expires": f"{RESPONSE_TTL_S}s"}
        return out

    def jwt(self) -> dict[str, Any]:
        """As the permissions of a NATS user JWT (what the auth callout issues)."""
        out: dict[str, Any] = {"pub": {"allow": list(self.publish)}, "sub": {"allow": list(self.subscribe)}}
        if self.responses:
            out["resp"] = {"max": 1, "ttl": RESPONSE_TTL_S * 1_000_000_000}
        return out


def micro_control(service: str) -> tuple[str, ...]:
    """The `$SRV` discovery subjects an instance of `service` answers (all, by name, by name and id)."""
    return ("$SRV.PING", "$SRV.INFO", "$SRV.STATS", f"$SRV.*.{service}", f"$SRV.*.{service}.*")


def gateway() -> Permissions:
    inbox = subjects.inbox_prefix("gateway")
    return Permissions(
        role="gateway",
        publish=(subjects.db_any(), subjects.fn_any(), "$SRV.>", "$JS.API.>", f"{inbox}.>"),
        subscribe=(subjects.changes_stream_subjects(), subjects.fn_any(), "$SRV.>", f"{inbox}.>"),
        inbox=inbox,
    )


def worker() -> Permissions:
    inbox = subjects.inbox_prefix("worker")
    return Permissions(
        role="worker",
        publish=(subjects.changes_stream_subjects(), *CHANGE_LOG_API, f"{inbox}.>"),
        subscribe=(subjects.db_any(), *micro_control(DB_WORKER_SERVICE), f"{inbox}.>"),
        inbox=inbox,
    )


def service(name: str) -> Permissions:
    subjects.check_name("service", name)
    inbox = subjects.inbox_prefix("service", name)
    return Permissions(
        role="service",
        publish=(subjects.fn_any(), f"{inbox}.>"),
        subscribe=(subjects.fn_of_service(name), *micro_control(name), f"{inbox}.>"),
        inbox=inbox,
    )


def auth() -> Permissions:
    return Permissions(role="auth", publish=(), subscribe=(AUTH_CALLOUT_SUBJECT,), inbox=None)
