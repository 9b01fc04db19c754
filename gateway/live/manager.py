"""Live queries on this gateway: subscribe, fan out change events, unsubscribe, resume.

The collection's change subject is subscribed (and flushed) *before* the snapshot is read; events
that arrive meanwhile are buffered per subscriber and merged into the snapshot by version, so
nothing falls between the two and nothing stale is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.msg import Msg

from adapters.names import VERSION_FIELD
from adapters.query import matches
from common.errors import BadRequest, SpaceCloudError, TooManyAttempts
from gateway import dbrequests
from gateway.core import Core
from gateway.security import Security, redact
from mesh import subjects
from mesh.messages import ChangeEvent, DbRequest

from ..peer import Peer
from .frames import SharedFeed, doc_id, feed, feed_time
from .query import Event, Kind, SharedQuery, Subscriber, coalesce
from .stream import ChangeStream

log = logging.getLogger("space_cloud.live")
TOKEN_EXPIRED = 4401
"""Close code of a connection whose live query's token expired."""


@dataclass(eq=False)
class Feed:
    project: str
    alias: str
    col: str
    id_field: str
    queries: dict[str, SharedQuery] = field(default_factory=dict)
    sub: Any = None
    ready: asyncio.Future[None] | None = None


class LiveQueries:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self.feeds: dict[tuple[str, str, str], Feed] = {}
        self.by_client: dict[str, dict[str, SharedQuery]] = {}
        self.stream: ChangeStream | None = None

    async def start(self) -> None:
        self.stream = ChangeStream(self.core.nc, max_age=self.core.settings.change_retention)
        await self.stream.start()

    # -- WebSocket handlers -------------------------------------------------------------------

    async def on_subscribe(self, client: Peer, req_id: str, data: dict[str, Any]) -> None:
        qid, col = data.get("id"), data.get("group")
        if not isinstance(qid, str) or not qid:
            client.reply(req_id, "realtime-subscribe", _nack(qid, col, "`id` (the live query id) is required"))
            return
        try:
            await self._subscribe(client, req_id, qid, data)
        except Exception as exc:
            await self._remove(client, qid)
            if not isinstance(exc, SpaceCloudError):
                raise
            client.reply(req_id, "realtime-subscribe", _nack(qid, col, exc.message))
        finally:
            if client.closed:  # the socket went away while subscribing, after its close hook ran
                await self._remove(client, qid)
                if not self.by_client.get(client.id):
                    self.by_client.pop(client.id, None)

    async def on_unsubscribe(self, client: Peer, req_id: str, data: dict[str, Any]) -> None:
        qid = data.get("id")
        if isinstance(qid, str):
            await self._remove(client, qid)
        client.reply(req_id, "realtime-unsubscribe", {"group": data.get("group"), "id": qid, "ack": True})

    def _watch_expiry(self, client: Peer, sub: Subscriber) -> None:
        """End the connection when a live query's token expires (close code 4401); renewing means subscribing
        again with the same id and a fresh token before then, which replaces the old subscription."""
        if sub.expires is None:
            return
        loop = asyncio.get_running_loop()

        def check() -> None:
            queries = self.by_client.get(client.id, {})
            query = queries.get(sub.qid)
            current = query.subscribers.get((client.id, sub.qid)) if query is not None else None
            if current is sub and not client.closed:
                log.info("live query %s: token expired, closing %s", sub.qid, client.id)
                client.close(TOKEN_EXPIRED, "token expired: sign in again and resubscribe")

        loop.call_later(max(sub.expires - time.time(), 0.0) + 0.05, check)

    async def on_close(self, client: Peer) -> None:
        for qid in list(self.by_client.get(client.id, {})):
            await self._remove(client, qid)
        self.by_client.pop(client.id, None)

    async def stop(self) -> None:
        for f in list(self.feeds.values()):
            if f.sub is not None:
                with contextlib.suppress(Exception):
                    await f.sub.unsubscribe()
        self.feeds.clear()
        self.by_client.clear()

    # -- subscribe ------------------------------------------------------------------------------

    async def _subscribe(self, client: Peer, req_id: str, qid: str, data: dict[str, Any]) -> None:
        project = self.core.project(client.project_of(data))
        alias, col = data.get("dbType"), data.get("group")
        if not isinstance(alias, str):
            raise BadRequest("`dbType` (the database alias) is required")
        db = dbrequests.database(project, alias)
        id_field = db.id_field
        col = dbrequests.collection(col, db)
        if not db.realtime_enabled(col):
            raise BadRequest(f"realtime is not enabled for {alias}/{col} (isRealtimeEnabled)")
        where = data.get("where") or {}
        options = data.get("options") or {}
        if not isinstance(where, dict) or not isinstance(options, dict):
            raise BadRequest("`where` and `options` must be objects")
        resume = options.get("resumeFrom")
        if resume is not None and (isinstance(resume, bool) or not isinstance(resume, int | float)):
            raise BadRequest("`options.resumeFrom` must be the time (ms) of the last event seen")
        token = data.get("token") if isinstance(data.get("token"), str) else None
        claims = self.security.claims(project, token)
        req = dbrequests.build("read", col, {"op": "all", "find": where}, id_field)
        req = await self.security.crud(project, db, col, "read", req, claims, token)
        where = req.find

        held = self.by_client.get(client.id, {})
        if qid not in held and len(held) >= self.core.settings.socket_live_queries:
            raise TooManyAttempts(f"too many live queries on this connection (at most "
                                  f"{self.core.settings.socket_live_queries}): unsubscribe some first")
        await self._remove(client, qid)
        f = await self._feed(project.id, alias, col, id_field)
        key = orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode()
        query = f.queries.get(key)
        if query is None:
            query = f.queries[key] = SharedQuery((project.id, alias, col, key), where, id_field)
        changes_only = bool(options.get("changesOnly"))
        skip_initial = changes_only or bool(options.get("skipInitial"))
        exp = claims.get("exp") if claims else None
        sub = Subscriber(client, qid, claims, token, changes_only,
                         syncing=None if skip_initial and resume is None else [],
                         expires=float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None)
        self._watch_expiry(client, sub)
        query.subscribers[(client.id, qid)] = sub
        self.by_client.setdefault(client.id, {})[qid] = query
        ack: dict[str, Any] = {"group": col, "id": qid, "ack": True, "error": "", "docs": [],
                               "time": int(time.time() * 1000)}

        if resume is not None:
            replay = await self.stream.since(project.id, alias, col, float(resume)) if self.stream else None
            if replay is not None:
                events = [self._event(query, e) for e in replay]
                merged = coalesce([e for e in events if e is not None] + (sub.syncing or []))
                sub.syncing = None
                client.reply(req_id, "realtime-subscribe", {**ack, "resumed": True})
                for missed in merged.values():
                    await self._send(sub, f, missed.id, "update" if missed.now else "delete", missed)
                return
            ack["reset"] = True
            skip_initial = False
        if skip_initial:
            client.reply(req_id, "realtime-subscribe", ack)
            return
        rows = await self.core.db_request(project.id, alias, "read",
                                          DbRequest(col=col, op="all", find=where, options={"versions": True}))
        snapshot: dict[str, tuple[int, dict[str, Any]]] = {}
        for row in rows if isinstance(rows, list) else []:
            version = row.pop(VERSION_FIELD, 0) if isinstance(row, dict) else 0
            did = doc_id(row.get(id_field)) if isinstance(row, dict) else None
            if did is not None:
                snapshot[did] = (int(version or 0), row)
        query.seed({did: v for did, (v, _) in snapshot.items()})
        later = coalesce(sub.syncing or [])
        sub.syncing = None
        docs = []
        for did, (version, row) in snapshot.items():
            ev: Event | None = later.pop(did, None)
            if ev is not None and ev.version > version:
                if ev.now and ev.doc is not None and await self._allowed(sub, f, ev.doc):
                    docs.append(feed(qid, did, "initial", redact(col, ev.doc), feed_time(ev.version), col, alias))
                continue
            docs.append(feed(qid, did, "initial", redact(col, row), feed_time(version), col, alias))
        for did, ev in later.items():
            if ev.now and ev.doc is not None and await self._allowed(sub, f, ev.doc):
                docs.append(feed(qid, did, "initial", redact(col, ev.doc), feed_time(ev.version), col, alias))
        ack["docs"] = docs
        client.reply(req_id, "realtime-subscribe", ack)

    def _event(self, query: SharedQuery, change: ChangeEvent) -> Event | None:
        did = doc_id(change.id)
        if did is None:
            return None
        doc = change.doc
        return Event(did, change.version, doc, doc is not None and matches(query.where, doc))

    async def _feed(self, project: str, alias: str, col: str, id_field: str) -> Feed:
        key = (project, alias, col)
        f = self.feeds.get(key)
        if f is None:
            f = self.feeds[key] = Feed(project, alias, col, id_field)
            f.ready = asyncio.get_running_loop().create_future()
            try:
                f.sub = await self.core.nc.subscribe(
                    subjects.changes(project, alias, col),
                    cb=functools.partial(self._on_message, f),
                    pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30,
                )
                await self.core.nc.flush()
            except Exception as exc:
                self.feeds.pop(key, None)
                f.ready.set_exception(exc)
                raise
            f.ready.set_result(None)
        assert f.ready is not None
        await asyncio.shield(f.ready)
        return f

    async def _remove(self, client: Peer, qid: str) -> None:
        query = self.by_client.get(client.id, {}).pop(qid, None)
        if query is None:
            return
        query.subscribers.pop((client.id, qid), None)
        if query.subscribers:
            return
        project, alias, col, key = query.key
        f = self.feeds.get((project, alias, col))
        if f is None:
            return
        f.queries.pop(key, None)
        if not f.queries:
            self.feeds.pop((project, alias, col), None)
            if f.sub is not None:
                with contextlib.suppress(Exception):
                    await f.sub.unsubscribe()

    # -- fan-out --------------------------------------------------------------------------------

    async def _on_message(self, f: Feed, msg: Msg) -> None:
        try:
            change = ChangeEvent.decode(msg.data)
        except BadRequest:
            log.warning("undecodable change event on %s", msg.subject)
            return
        metrics = self.core.metrics
        metrics.events_received.value += 1
        did = doc_id(change.id)
        if did is None:
            return
        version, doc = change.version, change.doc
        for query in list(f.queries.values()):
            result = query.classify(did, version, doc)
            if result is None:
                continue
            event, kind = result
            cache: dict[str, bool] = {}
            frame = None
            for sub in list(query.subscribers.values()):
                if sub.syncing is not None:
                    sub.syncing.append(event)
                    continue
                if kind is None:
                    continue
                if kind != "delete" and not await self._allowed(sub, f, event.doc or {}, cache):
                    continue
                if frame is None:
                    frame = SharedFeed(did, kind, self._payload(f, kind, event), feed_time(version), f.col, f.alias)
                sub.client.send_feed(sub.qid, frame)
                metrics.events_fanned_out.value += 1

    @staticmethod
    def _payload(f: Feed, kind: Kind, ev: Event) -> dict[str, Any]:
        if kind == "delete" or ev.doc is None:
            return {f.id_field: ev.doc[f.id_field] if ev.doc else ev.id}
        payload: dict[str, Any] = redact(f.col, ev.doc)
        return payload

    async def _send(self, sub: Subscriber, f: Feed, did: str, kind: Kind, ev: Event) -> None:
        if kind != "delete" and not await self._allowed(sub, f, ev.doc or {}):
            return
        payload = self._payload(f, kind, ev)
        sub.client.send_feed(sub.qid, SharedFeed(did, kind, payload, feed_time(ev.version), f.col, f.alias))

    async def _allowed(self, sub: Subscriber, f: Feed, doc: dict[str, Any], cache: dict[str, bool] | None = None
                       ) -> bool:
        """The read rule, applied to this one document for this subscriber."""
        return await self.security.live_read(f.project, f.alias, f.col, doc, sub.claims, sub.token, cache)


def _nack(qid: Any, col: Any, message: str) -> dict[str, Any]:
    return {"group": col, "id": qid, "ack": False, "error": message, "docs": None}
