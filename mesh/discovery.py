"""What is running, from standard NATS micro discovery ($SRV.INFO / $SRV.STATS), not a home-made registry."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg


async def gather(nc: Client, subject: str, window: float) -> list[dict[str, Any]]:
    """Every reply to `subject` (e.g. `$SRV.INFO`, `$SRV.STATS.sc-db`) within `window` seconds, as JSON objects."""
    replies: list[dict[str, Any]] = []
    inbox = nc.new_inbox()

    async def on_msg(msg: Msg) -> None:
        with contextlib.suppress(ValueError):
            data = orjson.loads(msg.data)
            if isinstance(data, dict):
                replies.append(data)

    sub = await nc.subscribe(inbox, cb=on_msg)
    try:
        await nc.publish(subject, b"", reply=inbox)
        await nc.flush()
        await asyncio.sleep(window)
    finally:
        await sub.unsubscribe()
    return replies


async def list_services(nc: Client, project: str | None = None, *, window: float = 0.25) -> list[dict[str, Any]]:
    """Services with their functions and live instances, grouped by name."""
    infos, stats = await asyncio.gather(gather(nc, "$SRV.INFO", window), gather(nc, "$SRV.STATS", window))
    stats_by_id = {s.get("id"): s for s in stats}
    services: dict[str, dict[str, Any]] = {}
    for info in infos:
        meta = info.get("metadata") or {}
        if project is not None and meta.get("project") != project:
            continue
        name = str(info.get("name"))
        entry = services.setdefault(
            name, {"name": name, "project": meta.get("project"), "functions": [], "instances": []}
        )
        funcs = entry["functions"]
        for ep in info.get("endpoints") or []:
            fname = str(ep.get("name"))
            if fname not in funcs:
                funcs.append(fname)
        st = stats_by_id.get(info.get("id")) or {}
        entry["instances"].append(
            {
                "id": info.get("id"),
                "version": info.get("version"),
                "kind": meta.get("kind", "python"),
                "owner": meta.get("owner"),
                "started": st.get("started"),
                "requests": sum(int(e.get("num_requests") or 0) for e in st.get("endpoints") or []),
            }
        )
    for entry in services.values():
        entry["functions"].sort()
        entry["instances"].sort(key=lambda i: str(i["id"]))
    return sorted(services.values(), key=lambda s: s["name"])
