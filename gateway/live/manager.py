"""Live queries on this gateway: subscribe, fan out change events, unsubscribe, resume.

Each collection followed here is read from the change log by position (`gateway.live.log`), from
before the snapshot is read; events that arrive meanwhile are buffered per subscriber and merged
into the snapshot by version, so nothing falls between the two and nothing stale is sent. A NATS
loss only delays events; where the log no longer holds what a collection's follower missed, the
connections of its subscribers are closed with `LOG_GAP` so that they resubscribe and get a fresh
snapshot (`reset`).

A resume (`options.cursor`, or `options.resumeFrom` in ms) replays the log from there a page at a
time, each page only once the socket has room, under the subscriber's read rule
(`gateway.live.resume`); where the log cannot tell, the answer is at once a `reset` with a fresh
snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.names import VERSION_FIELD, collection_key
from common.errors import BadRequest, SpaceCloudError, TooManyAttempts
from gateway import dbrequests
from gateway.core import Core
from gateway.security import Security, redact
from mesh import subjects
from mesh.messages import ChangeEvent, DbRequest

from ..peer import Peer
from .frames import SharedFeed, doc_id, feed, feed_time
from .index import QueryIndex
from .log import ChangeLogReader, Cursor, Follower, Start
from .query import Event, Kind, SharedQuery, Subscriber, coalesce
from .resume import event as logged_event
from .resume import tell

log = logging.getLogger("space_cloud.live")
TOKEN_EXPIRED = 4401
"""Close code of a connection whose live query's token expired."""
LOG_GAP = 4410
"""Close code of a connection whose live queries missed changes the log no longer holds: resubscribing
(with `resumeFrom` or `cursor`) answers `reset` with a fresh snapshot."""
SYNC_CAP = 100_000
"""Events held for one subscriber while its snapshot or replay is read; beyond, it starts again (LOG_GAP)."""


@dataclass(eq=False)
class Feed:
    project: str
    alias: str
    col: str
    id_field: str
    queries: QueryIndex = field(default_factory=QueryIndex)
    """Its live queries by canonical `where`, filed for matching by index."""
    follower: Follower | None = None
    ready: asyncio.Future[None] | None = None


class LiveQueries:
    def __init__(self, core: Core, security: Security) -> None:
        self.core = core
        self.security = security
        self.feeds: dict[tuple[str, str, str], Feed] = {}
        self.by_client: dict[str, dict[str, SharedQuery]] = {}
        self.changelog: ChangeLogReader | None = None

    async def start(self) -> None:
        self.changelog = ChangeLogReader(self.core.nc, self.core.settings.change_log())
        await self.changelog.start()

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
            if f.follower is not None:
                await f.follower.stop()
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
        cursor = Cursor.decode(options["cursor"]) if options.get("cursor") is not None else None
        resuming = cursor is not None or resume is not None
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
        f = await self._feed(project.id, alias, col, id_field, collection_key(db.type, col))
        key = orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode()
        query = f.queries.get(key)
        fresh_query = query is None
        if query is None:
            query = f.queries[key] = SharedQuery((project.id, alias, col, key), where, id_field)
        changes_only = bool(options.get("changesOnly"))
        skip_initial = changes_only or bool(options.get("skipInitial"))
        exp = claims.get("exp") if claims else None
        sub = Subscriber(client, qid, claims, token, changes_only,
                         syncing=None if skip_initial and not resuming else [],
                         expires=float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None)
        self._watch_expiry(client, sub)
        query.subscribers[(client.id, qid)] = sub
        self.by_client.setdefault(client.id, {})[qid] = query
        ack: dict[str, Any] = {"group": col, "id": qid, "ack": True, "error": "", "docs": [],
                               "time": int(time.time() * 1000)}
        assert f.follower is not None
        position = f.follower.cursor  # everything up to here is in the snapshot read below, or replayed

        if resuming:
            start: Start = cursor.seq if cursor is not None else float(resume)  # type: ignore[arg-type]
            if position is not None and await self._covers(cursor, resume):
                client.reply(req_id, "realtime-subscribe", {**ack, "resumed": True})
                await self._replay(f, query, sub, start, position.seq)
                return
            ack["reset"] = True
            skip_initial = False
        if position is not None:
            ack["cursor"] = position.encode()
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
        versions = {did: v for did, (v, _) in snapshot.items()}
        if fresh_query and len(query.subscribers) == 1:
            query.seed(versions)
        later = coalesce(sub.syncing or [])
        sub.syncing = None
        docs = []
        for did, (version, row) in snapshot.items():
            ev: Event | None = later.pop(did, None)
            if ev is not None and ev.version > version:
                versions[did] = ev.version
                if ev.now and ev.doc is not None and await self._allowed(sub, f, ev.doc):
                    docs.append(feed(qid, did, "initial", redact(col, ev.doc), feed_time(ev.version), col, alias))
                continue
            docs.append(feed(qid, did, "initial", redact(col, row), feed_time(version), col, alias))
        for did, ev in later.items():
            versions[did] = max(ev.version, versions.get(did, 0))
            if ev.now and ev.doc is not None and await self._allowed(sub, f, ev.doc):
                docs.append(feed(qid, did, "initial", redact(col, ev.doc), feed_time(ev.version), col, alias))
        if not (fresh_query and len(query.subscribers) == 1):
            sub.floor = versions  # the shared query may be behind this snapshot: older events are not for it
        ack["docs"] = docs
        client.reply(req_id, "realtime-subscribe", ack)

    async def _covers(self, cursor: Cursor | None, resume: float | None) -> bool:
        """Whether the log still holds everything after the client's position (False at once when the log
        cannot be reached: the client gets a fresh snapshot instead)."""
        if self.changelog is None or not self.core.nc.is_connected:
            return False
        try:
            state = await self.changelog.state(timeout=1.0)
        except Exception as exc:
            log.info("resume answered with a reset: %s", exc)
            return False
        return state.covers_after(cursor) if cursor is not None else state.covers_since(float(resume or 0))

    async def _replay(self, f: Feed, query: SharedQuery, sub: Subscriber, start: Start, until: int) -> None:
        """The changes a resuming subscriber missed, a page at a time as its queue drains, then what came
        meanwhile; live events follow."""
        assert self.changelog is not None
        client, cursor = sub.client, f.follower.cursor if f.follower is not None else None
        epoch = cursor.epoch if cursor is not None else 0
        subject = self._subject(f)
        try:
            async for page in self.changelog.replay(subject, start, until):
                events = [e for e in (logged_event(seq, change) for seq, change in page) if e is not None]
                await self._tell(f, query, sub, events, Cursor(epoch, page[-1][0]).encode())
                if client.closed:
                    return
        except SpaceCloudError as exc:
            log.warning("replay for %s stopped: %s: the client resumes again", subject, exc.message)
            client.close(LOG_GAP, "the replay could not be completed: resubscribe")
            return
        buffered, sub.syncing = sub.syncing or [], None
        await self._tell(f, query, sub, buffered, None)

    async def _tell(self, f: Feed, query: SharedQuery, sub: Subscriber, events: list[Event], cursor: str | None
                    ) -> None:
        """Send one subscriber what these changes mean for it, pacing on its send queue."""
        told = await tell(events, query.where, lambda doc: self._allowed(sub, f, doc))
        for n, (kind, ev) in enumerate(told):
            await sub.client.writable()
            if sub.client.closed:
                return
            last = n == len(told) - 1
            frame = SharedFeed(ev.id, kind, self._payload(f, kind, ev), feed_time(ev.version), f.col, f.alias,
                               cursor if last else None)
            sub.client.send_feed(sub.qid, frame)

    def _subject(self, f: Feed) -> str:
        project = self.core.config.project(f.project)
        db = project.crud.get(f.alias) if project is not None else None
        return subjects.changes(f.project, f.alias, collection_key(db.type, f.col) if db is not None else f.col)

    async def _feed(self, project: str, alias: str, col: str, id_field: str, logged_as: str) -> Feed:
        key = (project, alias, col)
        f = self.feeds.get(key)
        if f is None:
            f = self.feeds[key] = Feed(project, alias, col, id_field)
            f.ready = asyncio.get_running_loop().create_future()
            try:
                if self.changelog is None:
                    raise BadRequest("live queries are not started")
                feed_ = f
                f.follower = await self.changelog.follow(
                    subjects.changes(project, alias, logged_as),
                    lambda seq, change: self._on_change(feed_, seq, change), lambda: self._on_gap(feed_))
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
            if f.follower is not None:
                f.follower.cancel()

    # -- fan-out --------------------------------------------------------------------------------

    async def _on_gap(self, f: Feed) -> None:
        """The log lost changes this collection's subscribers did not get: they start again."""
        for query in list(f.queries.values()):
            for sub in list(query.subscribers.values()):
                log.warning("live query %s on %s/%s: the change log lost what it missed: closing %s (%d)",
                            sub.qid, f.alias, f.col, sub.client.id, LOG_GAP)
                sub.client.close(LOG_GAP, "the change log no longer holds what this connection missed: resubscribe")
        f.queries.forget()

    async def _on_change(self, f: Feed, seq: int, change: ChangeEvent) -> None:
        metrics = self.core.metrics
        metrics.events_received.value += 1
        did = doc_id(change.id)
        if did is None:
            return
        version, doc, before = change.version, change.doc, change.before
        cursor = Cursor(f.follower.epoch, seq).encode() if f.follower is not None and f.follower.epoch else None
        open_read: bool | None = None  # the read rule lets everyone read everything: no decision per subscriber
        for query in f.queries.candidates(did, version, doc, before):
            result = query.classify(did, version, doc, before=before, type=change.type, seq=seq)
            if result is None:
                continue
            event, kind = result
            cache: dict[str, bool] = {}
            frames: dict[Kind, SharedFeed] = {}
            for sub in list(query.subscribers.values()):
                if sub.syncing is not None:
                    if len(sub.syncing) >= SYNC_CAP:
                        sub.client.close(LOG_GAP, "too many changes while this live query was being read")
                    sub.syncing.append(event)
                    continue
                if sub.floor is not None:
                    held = sub.floor.pop(did, None)
                    if held is not None and version <= held:
                        continue
                if open_read is None:
                    open_read = self.security.live_read_open(f.project, f.alias, f.col)
                told = kind if open_read else await self._kind(sub, f, query, kind, event, cache)
                if told is None:
                    continue
                frame = frames.get(told)
                if frame is None:
                    frame = frames[told] = SharedFeed(did, told, self._payload(f, told, event), feed_time(version),
                                                      f.col, f.alias, cursor)
                sub.client.send_feed(sub.qid, frame)
                metrics.events_fanned_out.value += 1

    async def _kind(self, sub: Subscriber, f: Feed, query: SharedQuery, kind: Kind | None, ev: Event,
                    cache: dict[str, bool]) -> Kind | None:
        """What one subscriber hears of a change the shared query classified as `kind`: only documents it may
        read before or after the change (the document before, where the database could tell it)."""
        if kind is None:
            return None
        if kind != "delete" and await self._allowed(sub, f, ev.doc or {}, cache):
            return kind
        if ev.before is not None:
            could = query.matches(ev.before) and await self._allowed(sub, f, ev.before)
            return "delete" if could else None
        return "delete" if kind == "delete" else None

    @staticmethod
    def _payload(f: Feed, kind: Kind | str, ev: Event) -> dict[str, Any]:
        if kind == "delete" or ev.doc is None:
            source = ev.doc or ev.before
            return {f.id_field: source[f.id_field] if source and f.id_field in source else ev.id}
        payload: dict[str, Any] = redact(f.col, ev.doc)
        return payload

    async def _allowed(self, sub: Subscriber, f: Feed, doc: dict[str, Any], cache: dict[str, bool] | None = None
                       ) -> bool:
        """The read rule, applied to this one document for this subscriber."""
        return await self.security.live_read(f.project, f.alias, f.col, doc, sub.claims, sub.token, cache)


def _nack(qid: Any, col: Any, message: str) -> dict[str, Any]:
    return {"group": col, "id": qid, "ack": False, "error": message, "docs": None}
