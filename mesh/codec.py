"""The envelope codec on NATS: msgpack, with dates and other stray types made JSON-like."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import msgpack


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"cannot encode a {type(value).__name__}")


_packer_default = _default


def pack(value: Any) -> bytes:
    return msgpack.packb(value, default=_packer_default, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    if not data:
        return None
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
