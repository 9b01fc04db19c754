"""Connecting to NATS with the options every process of the mesh wants."""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client

log = logging.getLogger("space_cloud.nats")


async def disconnect(nc: Client | None) -> None:
    """Drain (pending publishes go out, subscriptions finish), or close if draining fails."""
    if nc is None or nc.is_closed:
        return
    try:
        await nc.drain()
    except Exception:
        await nc.close()


async def connect(url: str, *, name: str, connect_timeout: float = 5.0) -> Client:
    """Connect with reconnects forever (a restarted server is picked up again)."""

    async def on_error(err: Exception) -> None:
        log.warning("nats error (%s): %s", name, err)

    async def on_disconnect() -> None:
        log.warning("nats disconnected (%s)", name)

    async def on_reconnect() -> None:
        log.info("nats reconnected (%s)", name)

    opts: dict[str, Any] = {
        "servers": [u.strip() for u in url.split(",") if u.strip()],
        "name": name,
        "connect_timeout": connect_timeout,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        "pending_size": 8 * 1024 * 1024,
    }
    client: Client = await nats.connect(**opts)
    return client
