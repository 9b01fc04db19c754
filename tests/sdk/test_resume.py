"""A live query survives a dropped connection: every write made while it was cut arrives, none twice."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from sdk.client import API, Feed, cond

from .conftest import Server, Target, next_snapshot, unique
from .proxy import Proxy
from .test_live import by_id, until


async def test_live_query_resumes_after_the_network_is_cut(api: API, target: Target, server: Server) -> None:
    db, i = api.db(target.alias), target.id  # writes go straight to the server
    col = unique()
    where = cond("n", ">=", 0)
    await db.insert(col).docs([{i: f"s{k}", "n": k} for k in range(5)])
    u = urlsplit(server.url)
    async with Proxy(u.hostname or "127.0.0.1", u.port or 80) as proxy, \
            API(server.project, proxy.url, reconnect_min=0.05, reconnect_max=0.3) as far:
        states: list[bool] = []
        changed = asyncio.Event()

        def follow(up: bool) -> None:
            states.append(up)
            changed.set()

        far.on_connection_change(follow)
        async with far.db(target.alias).live_query(col).where(where) as live:
            assert sorted(by_id((await next_snapshot(live)).docs, i)) == [f"s{k}" for k in range(5)]
            await db.insert(col).doc({i: "before", "n": 100})
            assert (await next_snapshot(live)).changed == {i: "before", "n": 100}

            proxy.cut()
            async with asyncio.timeout(10):
                while not states or states[-1]:
                    changed.clear()
                    await changed.wait()
            cut_ids = [f"cut{k}" for k in range(20)]
            for k, cid in enumerate(cut_ids):
                await db.insert(col).doc({i: cid, "n": 200 + k})
            await db.update(col).where(cond(i, "==", "s0")).set({"n": 1000})
            await db.delete(col).where(cond(i, "==", "s1"))
            await db.update(col).where(cond(i, "==", "s2")).set({"n": -1})  # moves out of the query
            await db.update(col).where(cond("n", ">=", 200), cond("n", "<", 205)).inc({"n": 1})  # by a filter
            expected = by_id(await db.get(col).where(where), i)
            assert len(expected) == 5 - 2 + 1 + 20
            async with asyncio.timeout(10):
                while proxy.refused < 2:  # the client keeps trying while the network is down
                    proxy.attempt.clear()
                    await proxy.attempt.wait()
            assert "cut0" not in by_id(live.snapshot, i), "nothing can arrive while cut"

            proxy.restore()
            seen = await until(live, lambda s: by_id(s.docs, i) == expected, timeout=20)
            arrived: dict[str, int] = {}
            for snap in seen:
                assert snap.changed is not None and snap.type in ("update", "delete"), snap
                arrived[snap.changed[i]] = arrived.get(snap.changed[i], 0) + 1
            assert set(arrived) == {*cut_ids, "s0", "s1", "s2"}, "every write made during the cut, nothing else"
            assert all(n == 1 for n in arrived.values()), f"each once (a resume coalesces per document): {arrived}"
            assert by_id(live.snapshot, i) == expected
            assert (live.resumes, live.resets) == (1, 0), "resumed from the last time seen, not re-read"
            assert far.reconnects == 1 and states[-1] is True

            # and it stays live
            await db.insert(col).doc({i: "after", "n": 7})
            snap = await next_snapshot(live)
            assert (snap.type, snap.changed) == ("insert", {i: "after", "n": 7})


async def test_a_reset_replaces_the_snapshot(api: API, target: Target) -> None:
    """When the server cannot tell what was missed it sends a fresh snapshot: a new `initial`."""
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).docs([{i: "1"}, {i: "2"}])
    async with api.db(target.alias).live_query(col) as live:
        assert sorted(by_id((await next_snapshot(live)).docs, i)) == ["1", "2"]
        await db.delete(col).where(cond(i, "==", "1"))
        await db.insert(col).doc({i: "3"})
        await until(live, lambda s: sorted(by_id(s.docs, i)) == ["2", "3"])
        # as if the client had been away far longer than the server keeps changes, holding a stale doc
        ghost = Feed(query_id=live.id, doc_id="ghost", type="insert", payload={i: "ghost"}, time=2.0)
        live._cache.apply(ghost)
        live._cache.max_time = 1.0
        await api._socket.drop()
        fresh = await until(live, lambda s: s.type == "initial")
        assert sorted(by_id(fresh[-1].docs, i)) == ["2", "3"], "the fresh snapshot replaces the cache"
        assert (live.resumes, live.resets) == (0, 1)
