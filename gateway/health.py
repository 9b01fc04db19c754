"""`GET /v1/api/health`: what a load balancer and an operator need to know about this gateway.

200 while this gateway can serve (connected to NATS and not shutting down), 503 otherwise: the only
thing taking a gateway out of rotation fixes. Everything else is reported in the body and makes the
status `degraded`, not unavailable, because every gateway would see it alike: JetStream (change
history for resuming live queries), each database alias as the db workers see it (asked over
`$SRV.STATS.sc-db`, bounded by a short window), the number of workers and of each service's instances.
A report is reused for a second, so frequent probes cost one round of questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from gateway.core import Core
from mesh.discovery import gather

WORKER_SERVICE = "sc-db"
STATE_ORDER = ("connected", "connecting", "idle", "failing")
"""The best state any worker reports for an alias wins (one connected worker serves it)."""


class Health:
    def __init__(self, core: Core, *, window: float = 0.3, reuse: float = 1.0) -> None:
        self.core = core
        self.window = window
        self.reuse = reuse
        self.stopping = False
        self._last: tuple[float, int, dict[str, Any]] | None = None
        self._pending: asyncio.Future[tuple[int, dict[str, Any]]] | None = None

    async def report(self) -> tuple[int, dict[str, Any]]:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self.reuse:
            return last[1], last[2]
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._build())
            self._pending.add_done_callback(lambda _f: setattr(self, "_pending", None))
        code, body = await asyncio.shield(self._pending)
        self._last = (time.monotonic(), code, body)
        return code, body

    async def _build(self) -> tuple[int, dict[str, Any]]:
        core = self.core
        nc = core._nc
        connected = nc is not None and nc.is_connected and not self.stopping
        body: dict[str, Any] = {"nats": {"connected": bool(nc is not None and nc.is_connected)}}
        if nc is not None and connected:
            body["nats"]["server"] = str(nc.connected_url.netloc) if nc.connected_url else None
            js, stats = await asyncio.gather(self._jetstream(), gather(nc, f"$SRV.STATS.{WORKER_SERVICE}",
                                                                       self.window))
            body["jetstream"] = js
            body["workers"] = len(stats)
            body["databases"] = self._databases(stats)
        else:
            body["jetstream"] = {"ok": False, "error": "not connected to NATS"}
            body["workers"] = 0
            body["databases"] = self._databases([])
        body["services"] = sorted(
            ({"project": p, "name": s, "instances": n} for (p, s), n in core.directory.instances.items()
             if core.config.project(p) is not None),
            key=lambda e: (e["project"], e["name"]),
        )
        degraded = (not body["jetstream"].get("ok") or
                    any(d["state"] in ("failing", "no worker") for d in body["databases"]))
        body["status"] = "unavailable" if not connected else "degraded" if degraded else "serving"
        body["ok"] = connected
        if self.stopping:
            body["stopping"] = True
        return (200 if connected else 503), body

    async def _jetstream(self) -> dict[str, Any]:
        nc = self.core._nc
        if nc is None:
            return {"ok": False, "error": "not connected to NATS"}
        try:
            info = await nc.jetstream(timeout=1.0).account_info()
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__}
        return {"ok": True, "streams": info.streams}

    def _databases(self, stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reports: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for worker in stats:
            for ep in worker.get("endpoints") or []:
                data = ep.get("data") or {}
                for db in data.get("databases") or [] if isinstance(data, dict) else []:
                    with contextlib.suppress(KeyError, TypeError):
                        reports.setdefault((db["project"], db["alias"]), []).append(db)
        out = []
        for project in self.core.config.projects.values():
            for alias, db in project.crud.items():
                seen = reports.get((project.id, alias), [])
                entry: dict[str, Any] = {"project": project.id, "alias": alias, "type": db.type}
                if not seen:
                    entry["state"] = "no worker"
                else:
                    best = min(seen, key=lambda r: STATE_ORDER.index(r.get("state"))
                               if r.get("state") in STATE_ORDER else len(STATE_ORDER))
                    entry["state"] = best.get("state", "unknown")
                    entry["workers"] = {s: sum(1 for r in seen if r.get("state") == s)
                                        for s in STATE_ORDER if any(r.get("state") == s for r in seen)}
                    if best.get("reason"):
                        entry["reason"] = best["reason"]
                    if best.get("since"):
                        entry["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(best["since"])))
                out.append(entry)
        return out
