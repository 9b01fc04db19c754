"""Live queries through the client against the running server, on every database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import common.errors as errors
from sdk.client import API, Snapshot, Subscription, cond

from .conftest import Server, Target, next_snapshot, unique


def by_id(docs: list[dict[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    return {d[field]: d for d in docs}


async def until(sub: Subscription, check: Any, timeout: float = 10.0) -> list[Snapshot]:
    """Snapshots until `check(snapshot)` holds; fails after `timeout` seconds."""
    seen: list[Snapshot] = []
    async with asyncio.timeout(timeout):
        async for snap in sub:
            seen.append(snap)
            if check(snap):
                return seen
    raise AssertionError(f"the live query ended before the condition held: {seen}")


async def test_initial_insert_update_delete(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).docs([{i: "1", "u": "me", "n": 1}, {i: "2", "u": "other", "n": 2}])
    async with db.live_query(col).where(cond("u", "==", "me")) as live:
        first = await next_snapshot(live)
        assert (first.type, first.docs, first.changed) == ("initial", [{i: "1", "u": "me", "n": 1}], None)

        await db.insert(col).doc({i: "3", "u": "me", "n": 3})
        snap = await next_snapshot(live)
        assert (snap.type, snap.changed) == ("insert", {i: "3", "u": "me", "n": 3})
        assert by_id(snap.docs, i).keys() == {"1", "3"}

        await db.update(col).where(cond(i, "==", "1")).set({"n": 10})
        snap = await next_snapshot(live)
        assert snap.type == "update" and snap.changed == {i: "1", "u": "me", "n": 10}
        assert by_id(snap.docs, i)["1"]["n"] == 10

        await db.insert(col).doc({i: "4", "u": "other", "n": 4})  # not ours: nothing arrives
        await db.delete(col).where(cond(i, "==", "3"))
        snap = await next_snapshot(live)
        assert (snap.type, snap.changed) == ("delete", {i: "3", "u": "me", "n": 3})
        assert snap.docs == [{i: "1", "u": "me", "n": 10}]
        assert live.snapshot == snap.docs


async def test_snapshot_stays_correct_through_many_writes(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).docs([{i: str(k), "grp": "in" if k % 2 else "out", "n": k} for k in range(10)])
    where = cond("grp", "==", "in")
    async with db.live_query(col).where(where) as live:
        assert sorted(by_id((await next_snapshot(live)).docs, i)) == ["1", "3", "5", "7", "9"]
        # updates by a filter that is not the id, moves in and out, deletes by filter, inserts
        await db.update(col).where(cond("n", "<", 4)).inc({"n": 100})
        await db.update(col).where(cond(i, "==", "2")).set({"grp": "in"})  # moves in
        await db.update(col).where(cond(i, "==", "5")).set({"grp": "out"})  # moves out
        await db.delete(col).where(cond("n", ">", 8), cond("n", "<", 100))  # 9
        await db.insert(col).docs([{i: "20", "grp": "in", "n": 20}, {i: "21", "grp": "out", "n": 21}])
        await (db.begin_batch().add(db.update(col).where(cond(i, "==", "7")).set({"b": True}))
               .add(db.delete(col).where(cond(i, "==", "1"))))
        expected = by_id(await db.get(col).where(where), i)
        assert sorted(expected) == ["2", "20", "3", "7"]
        await until(live, lambda s: by_id(s.docs, i) == expected)
    # the server stopped sending: writes after the close change nothing here
    assert live.closed and by_id(live.snapshot, i) == expected


async def test_unsubscribe_tells_the_server(api: API, target: Target, server: Server) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    sub = db.live_query(col).subscribe()
    await sub.start()
    assert (await next_snapshot(sub)).docs == []
    await sub.aclose()
    # a second subscription on the same socket still gets its changes; the closed one does not
    async with db.live_query(col) as other:
        await next_snapshot(other)
        await db.insert(col).doc({i: "x"})
        assert (await next_snapshot(other)).changed == {i: "x"}
    with pytest.raises(StopAsyncIteration):
        await next_snapshot(sub)
    del server


async def test_rules_apply_to_live_queries(api: API, target: Target, server: Server) -> None:
    db, i = api.db(target.alias), target.id
    col = server.guarded  # read: own documents only (args.auth.id == args.find.userId)
    with pytest.raises(errors.SpaceCloudError, match="token"):  # the server's reason, e.g. a token is required
        await db.live_query(col).where(cond("userId", "==", "someone")).subscribe().start()

    me = await db.sign_up(f"live-{uuid.uuid4().hex[:8]}@example.com", "Live", "pw")
    api.set_token(me.token)
    with pytest.raises(errors.SpaceCloudError, match="do not match"):
        await db.live_query(col).where(cond("userId", "==", "someone-else")).subscribe().start()
    marker = uuid.uuid4().hex
    async with db.live_query(col).where(cond("userId", "==", me.user_id), cond("m", "==", marker)) as live:
        assert (await next_snapshot(live)).docs == []
        await db.insert(col).doc({i: unique("g"), "userId": me.user_id, "m": marker, "t": "mine"})
        snap = await next_snapshot(live)
        assert snap.type == "insert" and snap.changed is not None and snap.changed["t"] == "mine"
    api.set_token(None)


async def test_async_for_over_the_query_itself(api: API, target: Target) -> None:
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).doc({i: "1"})
    types = []
    async for snap in db.live_query(col).options(skip_initial=False):
        types.append(snap.type)
        if snap.type == "initial":
            assert snap.docs == [{i: "1"}]
            await db.insert(col).doc({i: "2"})
        else:
            break
    assert types == ["initial", "insert"]
