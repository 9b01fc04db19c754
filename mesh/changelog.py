"""The change log: the JetStream stream every committed write goes into, shared by workers and gateways.

Workers append to it (publish acknowledgements, `Nats-Msg-Id` de-duplication ids); gateways read it
by position. Whoever starts first creates it with the configured replicas and retention; nobody
ever changes an existing stream, so what an operator set by hand (`nats stream edit`) stays.

The JetStream API is spoken here directly (JSON requests), so every field the server sends
(`first_ts`, `created`, errors with their codes) is seen as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as Nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from common.errors import ServiceUnavailable

from . import subjects

log = logging.getLogger("space_cloud.changelog")

STREAM = "SC_CHANGES"
MSG_ID = "Nats-Msg-Id"
"""The de-duplication header: JetStream stores one message per id within the duplicate window."""
EXPECTED_STREAM = "Nats-Expected-Stream"
AUTO_REPLICAS = (3, 1)
"""Replicas tried, in order, when the config says none: 3 on a cluster of 3 or more, else 1."""
_NS = 1_000_000_000

_NOT_FOUND = 10059
_REPLICAS_UNSUPPORTED = 10074
_INSUFFICIENT_RESOURCES = 10023
_NAME_IN_USE = 10058


@dataclass(frozen=True)
class LogSettings:
    """How the stream is created when it does not exist (the config's `gateway:` section)."""

    replicas: int = 0
    """0: 3 on a cluster of 3 or more, else 1 (`gateway.changeReplicas`)."""
    max_age: float = 3600.0
    """Seconds of changes kept (`gateway.changeRetention`): how far back a resume can go."""
    max_bytes: int = 1 << 30
    duplicate_window: float = 120.0
    """Seconds within which a retried publish with the same id is stored once."""

    def config(self, replicas: int) -> dict[str, Any]:
        return {
            "name": STREAM, "subjects": [subjects.changes_stream_subjects()], "retention": "limits",
            "storage": "file", "discard": "old", "num_replicas": replicas, "max_age": int(self.max_age * _NS),
            "max_bytes": self.max_bytes, "duplicate_window": int(min(self.duplicate_window, self.max_age) * _NS),
        }


class JetStreamError(ServiceUnavailable):
    """The JetStream API answered with an error (its `code` and `err_code` kept)."""

    def __init__(self, message: str, *, code: int = 0, err_code: int = 0) -> None:
        super().__init__(message)
        self.code, self.err_code = code, err_code


async def api(nc: Nats, subject: str, body: dict[str, Any] | None = None, *, timeout: float = 2.0
              ) -> dict[str, Any]:
    """One JetStream API request; its error as a `JetStreamError`, no answer as `ServiceUnavailable`."""
    try:
        msg = await nc.request(subject, orjson.dumps(body) if body is not None else b"", timeout=timeout)
    except NoRespondersError:
        raise ServiceUnavailable("JetStream is not available (no responders)") from None
    except (NatsTimeout, TimeoutError):
        raise ServiceUnavailable(f"JetStream did not answer within {timeout:g}s") from None
    reply: dict[str, Any] = orjson.loads(msg.data)
    error = reply.get("error")
    if isinstance(error, dict):
        raise JetStreamError(f"JetStream: {error.get('description', 'error')}", code=int(error.get("code") or 0),
                             err_code=int(error.get("err_code") or 0))
    return reply


async def stream_info(nc: Nats, *, timeout: float = 2.0) -> dict[str, Any] | None:
    """The stream's info (config, state, created), None when it does not exist."""
    try:
        return await api(nc, f"$JS.API.STREAM.INFO.{STREAM}", timeout=timeout)
    except JetStreamError as exc:
        if exc.err_code == _NOT_FOUND:
            return None
        raise


async def ensure_stream(nc: Nats, settings: LogSettings, *, timeout: float = 5.0) -> dict[str, Any]:
    """The stream's info, after creating it if it does not exist. An existing stream is never changed
    (its replicas and retention may have been set by an operator); a difference is logged."""
    info = await stream_info(nc, timeout=timeout)
    if info is not None:
        _compare(info, settings)
        return info
    tries = (settings.replicas,) if settings.replicas else AUTO_REPLICAS
    last: JetStreamError | None = None
    for replicas in tries:
        try:
            created = await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", settings.config(replicas), timeout=timeout)
        except JetStreamError as exc:
            if exc.err_code == _NAME_IN_USE:  # another process created it meanwhile
                found = await stream_info(nc, timeout=timeout)
                if found is not None:
                    return found
            if exc.err_code not in (_REPLICAS_UNSUPPORTED, _INSUFFICIENT_RESOURCES):
                raise
            last = exc
            continue
        log.info("change log %s created with %d replica(s)", STREAM, replicas)
        return created
    if settings.replicas:
        log.error("cannot create the change log with %d replicas (%s): using 1; set gateway.changeReplicas "
                  "to what the cluster can hold", settings.replicas, last)
        return await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", settings.config(1), timeout=timeout)
    assert last is not None
    raise last


def _compare(info: dict[str, Any], settings: LogSettings) -> None:
    config = info.get("config") or {}
    replicas = int(config.get("num_replicas") or 1)
    if settings.replicas and replicas != settings.replicas:
        log.warning("change log %s has %d replica(s), the config asks %d: left as it is (change it with "
                    "`nats stream edit %s --replicas N`)", STREAM, replicas, settings.replicas, STREAM)
    age = int(config.get("max_age") or 0) / _NS
    if age and abs(age - settings.max_age) > 1:
        log.info("change log %s keeps %gs of changes (the config asks %gs): left as it is", STREAM, age,
                 settings.max_age)


def parse_time(value: Any) -> float | None:
    """A JetStream timestamp (RFC 3339 with nanoseconds) as epoch seconds."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z")
    head, _, frac = text.partition(".")
    try:
        base = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return base.timestamp() + (float("0." + frac[:9]) if frac.isdigit() else 0.0)


def msg_id(*parts: object) -> str:
    """A de-duplication id made of what identifies one change (the same change, the same id)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
