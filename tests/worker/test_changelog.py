"""The change log, from the worker's side: every committed write is in JetStream exactly once, with the
document before it, whoever wrote it, even when the worker died after the commit or NATS was away."""

# ruff: noqa: S608 -- the SQL text holds only table names the test made

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest

from adapters.base import Adapter
from adapters.registry import create_adapter
from adapters.sql.adapter import SqlAdapter
from adapters.sql.changelog import SqlCapture
from gateway.config import parse
from mesh import subjects
from mesh.changelog import STREAM, LogSettings, api, ensure_stream, stream_info
from mesh.natsd import EmbeddedNats
from tests.support.changelog import logged, outside, sql_database, sql_params, table, until
from tests.support.servers import free_port, project_config
from worker import DbWorker
from worker.changelog import ChangeLogOptions

FAST = ChangeLogOptions(poll=0.1)


def config(project: str, kind: str, conn: str, collections: dict[str, Any] | None = None) -> Any:
    alias = "db"
    raw = project_config(project, crud={alias: {"type": kind, "conn": conn, "collections": collections or {}}})
    return parse(raw, env={})


async def captured_adapter(kind: str, conn: str, project: str, collections: dict[str, Any] | None = None
                           ) -> SqlAdapter:
    adapter = create_adapter(kind, conn, namespace=project, collections=collections)
    assert isinstance(adapter, SqlAdapter)
    adapter.capture = SqlCapture(adapter, lambda col: True)
    await adapter.connect()
    return adapter


@pytest.mark.parametrize("kind", sql_params())
async def test_every_change_is_captured_with_the_document_before_whoever_writes(kind: str, tmp_path: Path) -> None:
    async with sql_database(kind, tmp_path) as (conn, project):
        typed = {"typed": {"fields": {"n": "integer", "ok": "boolean", "meta": "json"}}}
        adapter = await captured_adapter(kind, conn, project, typed)
        capture = adapter.capture
        assert isinstance(capture, SqlCapture)
        try:
            await adapter.create("todos", [{"id": "a", "n": 1}, {"id": "b", "n": 2}])
            await adapter.update("todos", "all", {"n": {"$gte": 1}}, {"$inc": {"n": 10}})
            await adapter.delete("todos", "one", {"id": "b"})
            await adapter.create("typed", [{"id": "t", "n": 3, "ok": True, "meta": {"k": [1]}}])
            t = table(kind, project, "todos")
            # another program, knowing nothing of versions: an insert without one, updates that keep it
            await outside(kind, conn, [
                (f"INSERT INTO {t} (id, doc, _v) VALUES (?, ?, 0)", ["o", '{"n": 7}']),
                (f"UPDATE {t} SET doc = ? WHERE id = ?", ['{"n": 8}', "o"]),
                (f"UPDATE {t} SET doc = ? WHERE id = ?", ['{"n": 9}', "a"]),
                (f"DELETE FROM {t} WHERE id = ?", ["o"]),
            ])
            rows = await capture.claim("test", ttl_ms=5000, limit=100)
            assert rows is not None
            seen = [(r.col, r.type, r.id, r.doc, r.before) for r in rows]
            assert seen == [
                ("todos", "insert", "a", {"id": "a", "n": 1}, None),
                ("todos", "insert", "b", {"id": "b", "n": 2}, None),
                ("todos", "update", "a", {"id": "a", "n": 11}, {"id": "a", "n": 1}),
                ("todos", "update", "b", {"id": "b", "n": 12}, {"id": "b", "n": 2}),
                ("todos", "delete", "b", None, {"id": "b", "n": 12}),
                ("typed", "insert", "t", {"id": "t", "n": 3, "ok": True, "meta": {"k": [1]}}, None),
                ("todos", "insert", "o", {"id": "o", "n": 7}, None),
                ("todos", "update", "o", {"id": "o", "n": 8}, {"id": "o", "n": 7}),
                ("todos", "update", "a", {"id": "a", "n": 9}, {"id": "a", "n": 11}),
                ("todos", "delete", "o", None, {"id": "o", "n": 8}),
            ]
            versions: dict[Any, int] = {}
            for r in rows:  # versions only grow per document, however the write was made
                assert r.version > versions.get((r.col, r.id), 0), r
                versions[(r.col, r.id)] = r.version
            stored = await adapter.read("todos", "all", {}, _versions())
            assert [(d["id"], d["_v"]) for d in stored] == [("a", versions[("todos", "a")])]
            # a second relay gets nothing while the first holds the lease
            assert await capture.claim("other", ttl_ms=5000, limit=100) is None
            await capture.trim("test", rows, release=True)
            assert not await capture.any_pending()
        finally:
            await adapter.close()


@pytest.mark.parametrize("kind", sql_params())
async def test_the_relay_lease_is_held_expires_and_is_given_up(kind: str, tmp_path: Path) -> None:
    async with sql_database(kind, tmp_path) as (conn, project):
        adapter = await captured_adapter(kind, conn, project)
        capture = adapter.capture
        assert isinstance(capture, SqlCapture)
        try:
            await adapter.create("todos", [{"id": "a"}])
            await adapter.create("todos", [{"id": "b"}])
            held = await capture.claim("one", ttl_ms=60_000, limit=1)
            assert held is not None and [r.id for r in held] == ["a"]  # oldest first, at most `limit`
            assert await capture.claim("two", ttl_ms=60_000, limit=10) is None
            again = await capture.claim("one", ttl_ms=60_000, limit=10)  # the holder renews it
            assert again is not None and [r.id for r in again] == ["a", "b"]
            await capture.trim("one", held, release=False)
            assert await capture.claim("two", ttl_ms=60_000, limit=10) is None  # trimmed, still held
            await capture.trim("one", [], release=True)
            taken = await capture.claim("two", ttl_ms=1, limit=10)
            assert taken is not None and [r.id for r in taken] == ["b"]
            await asyncio.sleep(0.05)  # the 1 ms lease has run out: anyone may take it
            late = await capture.claim("one", ttl_ms=60_000, limit=10)
            assert late is not None and [r.id for r in late] == ["b"]
        finally:
            await adapter.close()


def _versions() -> Any:
    from adapters.base import ReadOptions

    return ReadOptions(versions=True)


async def _worker(nats_url: str, cfg: Any, options: ChangeLogOptions = FAST) -> DbWorker:
    worker = DbWorker(nats_url, databases=cfg.databases(), changelog=options)
    await worker.start()
    return worker


@pytest.mark.parametrize("kind", sql_params())
async def test_two_workers_publish_each_change_once(kind: str, tmp_path: Path, nats_url: str) -> None:
    async with sql_database(kind, tmp_path) as (conn, project):
        cfg = config(project, kind, conn)
        workers = [await _worker(nats_url, cfg), await _worker(nats_url, cfg)]
        nc = await nats.connect(nats_url)
        try:
            adapters: list[Adapter] = []
            for w in workers:
                db = w.databases[(project, "db")]
                adapter = await db.get(None)
                w.changelog.attach(db, adapter)
                adapters.append(adapter)
            # both workers write, and both relays drain the one outbox
            for n in range(30):
                w, adapter = workers[n % 2], adapters[n % 2]
                changes = await adapter.create("items", [{"id": f"i{n}", "n": n}])
                w.changelog.committed(w.databases[(project, "db")], adapter, [("items", c) for c in changes])
            subject = subjects.changes(project, "db", "items")
            await until(lambda: _count(nc, subject, 30), what="30 events in the log")
            events = await logged(nc, subject)
            assert sorted(e.id for e in events) == sorted(f"i{n}" for n in range(30))
        finally:
            await nc.close()
            for w in workers:
                await w.stop()


async def _count(nc: Any, subject: str, n: int) -> bool:
    return len(await logged(nc, subject)) >= n


@pytest.mark.parametrize("kind", sql_params())
async def test_a_commit_no_worker_published_is_published_by_the_next(kind: str, tmp_path: Path,
                                                                      nats_url: str) -> None:
    """As if the worker died right after the commit: the outbox row was committed with the write."""
    async with sql_database(kind, tmp_path) as (conn, project):
        adapter = await captured_adapter(kind, conn, project)
        try:
            await adapter.create("orphans", [{"id": "x", "n": 1}])
        finally:
            await adapter.close()
        nc = await nats.connect(nats_url)
        worker = await _worker(nats_url, config(project, kind, conn))
        try:
            subject = subjects.changes(project, "db", "orphans")
            await until(lambda: _count(nc, subject, 1), what="the orphaned change in the log")
            [event] = await logged(nc, subject)
            assert (event.type, event.id, event.doc) == ("insert", "x", {"id": "x", "n": 1})
        finally:
            await worker.stop()
            await nc.close()


async def test_changes_committed_while_nats_is_away_are_published_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedNats(port=port, store_dir=str(tmp_path / "js"))
    url = server.start()
    conn, project = str(tmp_path / "away.db"), "away" + uuid.uuid4().hex[:6]
    worker = await _worker(url, config(project, "sqlite", conn))
    try:
        db = worker.databases[(project, "db")]
        adapter = await db.get(None)
        worker.changelog.attach(db, adapter)
        await adapter.create("notes", [{"id": "before"}])
        nc = await nats.connect(url)
        subject = subjects.changes(project, "db", "notes")
        await until(lambda: _count(nc, subject, 1))
        await nc.close()
        server.stop()
        changes = await adapter.create("notes", [{"id": "while-away"}])
        worker.changelog.committed(db, adapter, [("notes", c) for c in changes])
        await outside("sqlite", conn, [(f"INSERT INTO {table('sqlite', project, 'notes')} (id, doc, _v) "
                                        "VALUES ('outside', '{}', 0)", [])])
        await asyncio.sleep(0.3)
        server = EmbeddedNats(port=port, store_dir=str(tmp_path / "js"))
        server.start()
        nc = await nats.connect(url)
        try:
            await until(lambda: _count(nc, subject, 3), timeout=20, what="the changes made while NATS was away")
            assert [e.id for e in await logged(nc, subject)] == ["before", "while-away", "outside"]
        finally:
            await nc.close()
    finally:
        await worker.stop()
        server.stop()


async def test_capture_can_be_turned_off_per_collection(tmp_path: Path, nats_url: str) -> None:
    conn, project = str(tmp_path / "off.db"), "off" + uuid.uuid4().hex[:6]
    cfg = config(project, "sqlite", conn, {"imports": {"captureOutsideWrites": False}})
    worker = await _worker(nats_url, cfg)
    nc = await nats.connect(nats_url)
    try:
        db = worker.databases[(project, "db")]
        adapter = await db.get(None)
        capture = worker.changelog.attach(db, adapter)
        assert capture is not None
        for col in ("imports", "notes"):
            changes = await adapter.create(col, [{"id": "api"}])
            worker.changelog.committed(db, adapter, [(col, c) for c in changes])
        assert not capture.covers("imports") and capture.covers("notes")
        for col in ("imports", "notes"):
            await outside("sqlite", conn, [(f"INSERT INTO {table('sqlite', project, col)} (id, doc, _v) "
                                            "VALUES ('outside', '{}', 0)", [])])
        await until(lambda: _count(nc, subjects.changes(project, "db", "notes"), 2))
        # the worker still publishes its own writes there, but nothing sees the other program's
        assert [e.id for e in await logged(nc, subjects.changes(project, "db", "imports"))] == ["api"]
    finally:
        await nc.close()
        await worker.stop()


async def test_mongo_writes_are_published_by_the_worker_once(tmp_path: Path, nats_url: str) -> None:
    project = "mg" + uuid.uuid4().hex[:6]
    worker = await _worker(nats_url, config(project, "mongo", f"mongomock://{project}"))
    nc = await nats.connect(nats_url)
    try:
        db = worker.databases[(project, "db")]
        adapter = await db.get(None)
        changes = await adapter.create("things", [{"_id": "m", "n": 1}])
        changes += await adapter.update("things", "one", {"_id": "m"}, {"$set": {"n": 2}})
        pairs = [("things", c) for c in changes]
        worker.changelog.committed(db, adapter, pairs)
        worker.changelog.committed(db, adapter, pairs)  # a retry of the same changes is stored once
        subject = subjects.changes(project, "db", "things")
        await until(lambda: _count(nc, subject, 2))
        await asyncio.sleep(0.2)
        events = await logged(nc, subject)
        assert [(e.type, e.doc, e.before) for e in events] == [
            ("insert", {"_id": "m", "n": 1}, None), ("update", {"_id": "m", "n": 2}, {"_id": "m", "n": 1})]
    finally:
        await nc.close()
        await worker.stop()


async def test_an_existing_stream_is_never_changed(tmp_path: Path) -> None:
    server = EmbeddedNats(store_dir=str(tmp_path / "js"))
    url = server.start()
    nc = await nats.connect(url)
    try:
        set_by_hand = LogSettings(max_age=7200.0).config(1)
        await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", set_by_hand)
        await ensure_stream(nc, LogSettings(max_age=60.0, replicas=3))
        worker = await _worker(url, config("keep", "sqlite", str(tmp_path / "k.db"),),
                               ChangeLogOptions(log=LogSettings(max_age=60.0)))
        await worker.stop()
        info = await stream_info(nc)
        assert info is not None and info["config"]["max_age"] == set_by_hand["max_age"]
        assert info["config"]["num_replicas"] == 1
    finally:
        await nc.close()
        server.stop()
