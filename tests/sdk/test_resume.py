"""A live query survives a dropped connection and an expired token: every write made meanwhile arrives,
none twice, and it resumes by change-log cursor (`options.cursor`), not by time."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import jwt
import orjson
import pytest

from common.errors import Unauthorized
from sdk.client import API, Feed, Subscription, cond

from .conftest import SECRET, Server, Target, next_snapshot, unique
from .proxy import Proxy
from .test_live import by_id, until

Sent = list[tuple[dict[str, Any], str | None]]


def subscribes(client: API, monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Every `realtime-subscribe` the client sends from now on: (its data, the token sent with it)."""
    socket = client._socket
    original = socket.send
    sent: Sent = []

    async def send(type_: str, data: dict[str, Any], rid: str = "") -> None:
        if type_ == "realtime-subscribe":
            sent.append((data, client.token))
        await original(type_, data, rid)

    monkeypatch.setattr(socket, "send", send)
    return sent


def cursors(client: API, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every `data.cursor` the server sends the client from now on (acks and feeds), in order."""
    socket = client._socket
    original = socket._receive
    seen: list[str] = []

    def receive(raw: str | bytes) -> None:
        data = orjson.loads(raw).get("data") or {}
        if isinstance(data.get("cursor"), str):
            seen.append(data["cursor"])
        original(raw)

    monkeypatch.setattr(socket, "_receive", receive)
    return seen


def token(ttl: float, user: str = "u1") -> str:
    """A user token of the test server's project that expires in `ttl` seconds."""
    return jwt.encode({"id": user, "exp": time.time() + ttl}, SECRET, algorithm="HS256")


async def eventually(check: Any, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def changed_ids(snaps: list[Any], i: str) -> dict[str, int]:
    arrived: dict[str, int] = {}
    for snap in snaps:
        assert snap.changed is not None and snap.type in ("insert", "update", "delete"), snap
        arrived[snap.changed[i]] = arrived.get(snap.changed[i], 0) + 1
    return arrived


async def test_live_query_resumes_after_the_network_is_cut(api: API, target: Target, server: Server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    db, i = api.db(target.alias), target.id  # writes go straight to the server
    col = unique()
    where = cond("n", ">=", 0)
    await db.insert(col).docs([{i: f"s{k}", "n": k} for k in range(5)])
    u = urlsplit(server.url)
    async with Proxy(u.hostname or "127.0.0.1", u.port or 80) as proxy, \
            API(server.project, proxy.url, reconnect_min=0.05, reconnect_max=0.3) as far:
        sent = subscribes(far, monkeypatch)
        received = cursors(far, monkeypatch)
        states: list[bool] = []
        changed = asyncio.Event()

        def follow(up: bool) -> None:
            states.append(up)
            changed.set()

        far.on_connection_change(follow)
        async with far.db(target.alias).live_query(col).where(where) as live:
            assert sorted(by_id((await next_snapshot(live)).docs, i)) == [f"s{k}" for k in range(5)]
            assert len(received) == 1, "the ack of a snapshot gives its position"
            await db.insert(col).doc({i: "before", "n": 100})
            assert (await next_snapshot(live)).changed == {i: "before", "n": 100}
            assert len(received) == 2, "so does a live feed"

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
            arrived = changed_ids(seen, i)
            assert set(arrived) == {*cut_ids, "s0", "s1", "s2"}, "every write made during the cut, nothing else"
            assert all(n == 1 for n in arrived.values()), f"each once (a resume coalesces per document): {arrived}"
            assert by_id(live.snapshot, i) == expected
            assert (live.resumes, live.resets) == (1, 0), "resumed from the last position seen, not re-read"
            assert far.reconnects == 1 and states[-1] is True
            assert len(sent) == 2
            options = sent[1][0]["options"]
            assert options.get("cursor") == received[1], options
            assert live.cursor == received[-1], "the newest cursor seen: the replay's last page"

            # and it stays live
            await db.insert(col).doc({i: "after", "n": 7})
            snap = await next_snapshot(live)
            assert (snap.type, snap.changed) == ("insert", {i: "after", "n": 7})


async def test_a_resume_by_cursor_needs_no_clock(api: API, target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The time a resume by `resumeFrom` would ask for is long gone from the log: the cursor still resumes."""
    db, i = api.db(target.alias), target.id
    col = unique()
    await db.insert(col).docs([{i: "1"}, {i: "2"}])
    sent = subscribes(api, monkeypatch)
    async with api.db(target.alias).live_query(col) as live:
        assert sorted(by_id((await next_snapshot(live)).docs, i)) == ["1", "2"]
        live._cache.max_time = 1.0  # a resume by time from here would be a reset
        await api._socket.drop()
        await eventually(lambda: live.resumes == 1, "a resume")
        await db.delete(col).where(cond(i, "==", "1"))
        snap = await next_snapshot(live)
        assert (snap.type, set(by_id(snap.docs, i))) == ("delete", {"2"})
        assert (live.resumes, live.resets) == (1, 0)
        options = sent[-1][0]["options"]
        assert options["resumeFrom"] == 1 and "cursor" in options, "by time it would have been a reset"


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
        # as if the client had been away while the log was made anew (a cursor of an older incarnation),
        # holding a stale doc
        ghost = Feed(query_id=live.id, doc_id="ghost", type="insert", payload={i: "ghost"}, time=2.0)
        live._cache.apply(ghost)
        live._cache.max_time = 1.0
        live._cursor = "1.1"
        await api._socket.drop()
        fresh = await until(live, lambda s: s.type == "initial")
        assert sorted(by_id(fresh[-1].docs, i)) == ["2", "3"], "the fresh snapshot replaces the cache"
        assert (live.resumes, live.resets) == (0, 1)
        assert live.cursor not in (None, "1.1"), "the reset gives the new position"


# -- an expired token -----------------------------------------------------------------------------

async def missed_while_paused(api: API, alias: str, col: str) -> dict[str, dict[str, Any]]:
    db = api.db(alias)
    await db.delete(col).where(cond("id", "==", "s0"))
    await db.update(col).where(cond("id", "==", "s1")).set({"n": 100})
    await db.insert(col).doc({"id": "new", "n": 5})
    return by_id(await db.get(col), "id")


async def resumes_with_a_new_token(far: API, live: Subscription, sent: Sent, expected: dict[str, dict[str, Any]],
                                   api: API, alias: str, col: str) -> None:
    before = len(sent)
    fresh = token(60)
    far.set_token(fresh)
    seen = await until(live, lambda s: by_id(s.docs, "id") == expected)
    assert changed_ids(seen, "id") == {"s0": 1, "s1": 1, "new": 1}, "what was missed, once each"
    assert not live.waiting_for_token
    assert len(sent) == before + 1
    data, sent_token = sent[-1]
    assert sent_token == fresh
    assert "cursor" in data["options"], data["options"]
    assert live.resets == 0, "resumed, not re-read"
    await api.db(alias).insert(col).doc({"id": "after", "n": 7})  # live again
    snap = await next_snapshot(live)
    assert (snap.type, snap.changed) == ("insert", {"id": "after", "n": 7})


async def test_an_expired_token_pauses_the_live_query_until_a_new_one(api: API, server: Server,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    alias = server.aliases["sqlite"]
    col = unique()
    await api.db(alias).insert(col).docs([{"id": f"s{k}", "n": k} for k in range(3)])
    async with API(server.project, server.url, reconnect_min=0.05, reconnect_max=0.3) as far:
        sent = subscribes(far, monkeypatch)
        far.set_token(token(2.0))
        async with far.db(alias).live_query(col) as live:
            assert len((await next_snapshot(live)).docs) == 3
            await api.db(alias).insert(col).doc({"id": "live", "n": 9})
            assert (await next_snapshot(live)).changed == {"id": "live", "n": 9}

            with pytest.raises(Unauthorized, match="4401") as raised:  # the server closes the socket at `exp`
                await next_snapshot(live, timeout=10)
            assert "token expired" in raised.value.message and raised.value.status == 401
            assert live.waiting_for_token and not live.closed
            assert far._socket.last_close is not None and far._socket.last_close[0] == 4401
            paused_at = len(sent)
            expected = await missed_while_paused(api, alias, col)
            await eventually(lambda: far.reconnects >= 1 and far._socket.is_open, "the socket reopened")
            await asyncio.sleep(0.5)
            assert len(sent) == paused_at, "no resubscribe with the expired token"
            assert "new" not in by_id(live.snapshot, "id")
            await resumes_with_a_new_token(far, live, sent, expected, api, alias, col)
            assert live.resumes == 1


async def test_a_token_that_expired_while_cut_off_is_refused_once(api: API, server: Server,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    alias = server.aliases["sqlite"]
    col = unique()
    await api.db(alias).insert(col).docs([{"id": f"s{k}", "n": k} for k in range(3)])
    u = urlsplit(server.url)
    short = token(1.5)
    async with Proxy(u.hostname or "127.0.0.1", u.port or 80) as proxy, \
            API(server.project, proxy.url, reconnect_min=0.05, reconnect_max=0.3) as far:
        sent = subscribes(far, monkeypatch)
        far.set_token(short)
        async with far.db(alias).live_query(col) as live:
            assert len((await next_snapshot(live)).docs) == 3
            proxy.cut()  # the server forgets the live query: no 4401 comes
            expected = await missed_while_paused(api, alias, col)
            await asyncio.sleep(max(0.0, jwt.decode(short, options={"verify_signature": False})["exp"]
                                    - time.time() + 0.2))
            cut_at = len(sent)
            proxy.restore()
            with pytest.raises(Unauthorized, match="invalid or expired token"):
                await next_snapshot(live, timeout=10)
            assert live.waiting_for_token
            await asyncio.sleep(0.5)
            assert len(sent) == cut_at + 1 and sent[-1][1] == short, "refused once, not again and again"
            await resumes_with_a_new_token(far, live, sent, expected, api, alias, col)
            assert live.resumes == 1
