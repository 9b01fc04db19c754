"""A live-query client for tests that speaks the wire protocol and merges like the official JS client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection


class LiveClient:
    def __init__(self, ws: ClientConnection, project: str, token: str = "") -> None:
        self.ws = ws
        self.project = project
        self.token = token
        self.feeds: list[dict[str, Any]] = []
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        """qid → docId → {time, payload, deleted} (the JS client's cache, §3.4)"""
        self.last_time: dict[str, int] = {}
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, ws_url: str, project: str, token: str = "", **kw: Any) -> LiveClient:
        ws = await websockets.connect(f"{ws_url}/v1/api/{project}/socket/json", **kw)
        return cls(ws, project, token)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["id"] and frame["id"] in self._replies:
                    self._replies.pop(frame["id"]).set_result(frame["data"])
                elif frame["type"] == "realtime-feed":
                    self._apply(frame["data"])
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result((self.ws.close_code or 1006, self.ws.close_reason or ""))

    def _apply(self, f: dict[str, Any]) -> None:
        self.feeds.append(f)
        qid = f["id"]
        self.last_time[qid] = max(self.last_time.get(qid, 0), f["time"])
        rows = self.rows.setdefault(qid, {})
        row = rows.get(f["docId"])
        if f["type"] in ("insert", "update", "initial"):
            if row is None or row["time"] <= f["time"]:
                rows[f["docId"]] = {"time": f["time"], "payload": f["payload"], "deleted": False}
        elif f["type"] == "delete" and row is not None and row["time"] <= f["time"]:
            row.update(time=f["time"], deleted=True)

    def snapshot(self, qid: str) -> dict[str, dict[str, Any]]:
        return {k: r["payload"] for k, r in self.rows.get(qid, {}).items() if not r["deleted"]}

    async def request(self, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        rid = f"r{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[rid] = fut
        await self.ws.send(orjson.dumps({"id": rid, "type": type_, "data": {**data, "token": self.token}}).decode())
        return await asyncio.wait_for(fut, 10)

    async def subscribe(self, qid: str, col: str, alias: str, where: dict[str, Any] | None = None,
                        **options: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"id": qid, "group": col, "dbType": alias, "project": self.project,
                                "options": options}
        if where is not None:
            data["where"] = where
        ack = await self.request("realtime-subscribe", data)
        if ack.get("ack"):
            if ack.get("reset"):
                self.rows.pop(qid, None)
            for f in ack.get("docs") or []:
                self._apply(f)
            self.last_time[qid] = max(self.last_time.get(qid, 0), ack.get("time", 0))
        return ack

    async def unsubscribe(self, qid: str, col: str, **extra: Any) -> dict[str, Any]:
        return await self.request("realtime-unsubscribe", {"id": qid, "group": col, "options": {}, **extra})

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
