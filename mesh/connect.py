"""Connecting to NATS with the options every process of the mesh wants.

`NatsTarget` says where and as whom: the URL(s), the credentials (user/password, token, a creds
file, an nkey seed), TLS, and the inbox prefix of the connection's role (`mesh.roles`), which its
permissions allow it to read and no other role's do.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import nats
from nats.aio.client import Client

log = logging.getLogger("space_cloud.nats")

Secret = str | Callable[[], str]
"""A credential, or a function that returns the current one (read again on every reconnect)."""


@dataclass(frozen=True)
class NatsTarget:
    url: str
    user: Secret | None = None
    password: Secret | None = None
    token: Secret | None = None
    creds_file: str | None = None
    """A `.creds` file (user JWT + nkey seed), as `nsc` writes it."""
    nkey_file: str | None = None
    """A file holding an nkey seed (`SU…`)."""
    nkey_seed: str | None = None
    """An nkey seed itself (the embedded server's own users; never written to disk)."""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    inbox_prefix: str | None = None

    def with_inbox(self, prefix: str) -> NatsTarget:
        return replace(self, inbox_prefix=prefix)

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca or self.tls_cert):
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx

    def options(self) -> dict[str, Any]:
        """nats-py `connect()` keyword arguments for these credentials and TLS."""
        opts: dict[str, Any] = {}
        if self.user is not None:
            opts["user"] = self.user
            opts["password"] = self.password if self.password is not None else ""
        if self.token is not None:
            opts["token"] = self.token
        if self.creds_file:
            opts["user_credentials"] = self.creds_file
        if self.nkey_file:
            opts["nkeys_seed"] = self.nkey_file
        if self.nkey_seed:
            opts["nkeys_seed_str"] = self.nkey_seed
        tls = self.tls_context()
        if tls is not None:
            opts["tls"] = tls
        if self.inbox_prefix:
            opts["inbox_prefix"] = self.inbox_prefix
        return opts

    def __repr__(self) -> str:  # never print credentials
        return f"NatsTarget({self.url!r}, inbox_prefix={self.inbox_prefix!r})"


def as_target(target: str | NatsTarget) -> NatsTarget:
    return target if isinstance(target, NatsTarget) else NatsTarget(target)


async def settle(nc: Client) -> None:
    """Return once the server has every command sent on `nc` so far, subscriptions included (so anyone's
    next publish finds them). One `flush()` is not enough: nats-py writes its PING straight to the
    socket, ahead of commands still queued for its flusher task (a `subscribe()` just made), so the PONG
    can come back before the server has seen the SUB. The flusher runs while the first PING is out;
    the second goes after what it wrote."""
    await nc.flush()
    await nc.flush()


async def disconnect(nc: Client | None) -> None:
    """Drain (pending publishes go out, subscriptions finish), or close if draining fails."""
    if nc is None or nc.is_closed:
        return
    try:
        await nc.drain()
    except Exception:  # e.g. reconnecting: the server is gone, nothing is left to drain
        with contextlib.suppress(Exception):
            await nc.close()


async def connect(
    target: str | NatsTarget,
    *,
    name: str,
    connect_timeout: float = 5.0,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect with reconnects forever (a restarted server is picked up again)."""
    target = as_target(target)

    async def on_error(err: Exception) -> None:
        log.warning("nats error (%s): %s", name, err)

    async def disconnected() -> None:
        log.warning("nats disconnected (%s)", name)
        if on_disconnect is not None:
            await on_disconnect()

    async def on_reconnect() -> None:
        log.info("nats reconnected (%s)", name)

    opts: dict[str, Any] = {
        "servers": target.servers,
        "name": name,
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": disconnected,
        "reconnected_cb": on_reconnect,
        "pending_size": 8 * 1024 * 1024,
        **target.options(),
    }
    client: Client = await nats.connect(**opts)
    return client
