"""Shared resources are shared fairly: a flood of sign-ups never starves sign-in, one client cannot take every
hashing slot, failed sign-ins from one client never lock the account's owner out elsewhere, and one slow read
does not hold up everyone else's reads of an SQLite database."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.errors import TooManyAttempts, Unauthorized
from gateway.passwords import FailedSignIns, Passwords
from tests.support.stack import stack


class SlowHasher:
    """Stands in for argon2: `hash` blocks until released (a flood of slow sign-ups), `verify` is instant."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def hash(self, password: str) -> str:
        self.release.wait(10)
        return "h:" + password

    def verify(self, stored: str, password: str) -> bool:
        return stored == "h:" + password


async def test_a_flood_of_sign_ups_does_not_starve_sign_in() -> None:
    hasher = SlowHasher()
    passwords = Passwords(hasher=hasher, max_waiting=8, per_client=100)  # type: ignore[arg-type]
    flood = [asyncio.create_task(passwords.hash(f"p{i}", client=f"bot{i}")) for i in range(8)]
    await asyncio.sleep(0.1)
    # sign-in still answers at once while every sign-up waits for its lane
    assert await asyncio.wait_for(passwords.verify("h:right", "right", client="alice"), 5) is True
    # and the sign-up lane's queue is bounded: one more is refused at once instead of waiting for ever
    with pytest.raises(TooManyAttempts):
        await passwords.hash("one-more", client="bot-extra")
    hasher.release.set()
    assert len(await asyncio.gather(*flood)) == 8


async def test_one_client_cannot_take_every_slot() -> None:
    hasher = SlowHasher()
    passwords = Passwords(hasher=hasher, per_client=2)  # type: ignore[arg-type]
    mine = [asyncio.create_task(passwords.hash("x", client="10.0.0.9")) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(TooManyAttempts):
        await passwords.hash("x", client="10.0.0.9")
    other: Any = asyncio.create_task(passwords.hash("y", client="10.0.0.7"))  # another client is not refused
    hasher.release.set()
    await asyncio.gather(*mine, other)


async def test_unknown_accounts_cost_the_same_verification() -> None:
    passwords = Passwords()
    assert await passwords.verify(None, "anything") is False  # checked against a dummy hash, never True


def test_failures_from_one_client_do_not_lock_out_another() -> None:
    failures = FailedSignIns(free=2, per_client_free=100)
    for _ in range(5):
        failures.failed("victim@example.com", "attacker")
    with pytest.raises(TooManyAttempts):
        failures.check("victim@example.com", "attacker")
    failures.check("victim@example.com", "the-victim")  # the owner, from their own client, is not slowed


def test_one_client_guessing_many_accounts_is_slowed_too() -> None:
    failures = FailedSignIns(free=3, per_client_free=5)
    for n in range(6):
        failures.failed(f"user{n}@example.com", "sprayer")
    with pytest.raises(TooManyAttempts):
        failures.check("fresh@example.com", "sprayer")
    failures.check("fresh@example.com", "someone-else")


async def test_failed_admin_logins_from_one_client_do_not_lock_the_admin_out(nats_url: str) -> None:
    from gateway.admin import Admin
    from gateway.config import parse
    from gateway.core import Core
    from gateway.security import Security
    from tests.support.servers import project_config

    cfg = parse(project_config("adm", admin={"users": [{"user": "root", "pass": "right-password"}],
                                             "secret": "admin-secret-0123456789-0123456789"}), env={})
    core = Core(cfg, nats_url=nats_url)
    admin = Admin(core, Security(core))
    for _ in range(6):
        with pytest.raises((Unauthorized, TooManyAttempts)):
            admin.login({"user": "root", "pass": "guess"}, client="attacker")
    with pytest.raises(TooManyAttempts):
        admin.login({"user": "root", "pass": "right-password"}, client="attacker")
    assert admin.login({"user": "root", "pass": "right-password"}, client="the-admin")["token"]


async def test_one_slow_sqlite_read_does_not_hold_up_everyone_elses(tmp_path: Path, nats_url: str) -> None:
    """An attacker's read that keeps SQLite busy for seconds (a wide `$or` with a sort over a large table):
    other users' reads by id are answered while it still runs."""
    allow = {"default": {"rules": {op: {"rule": "allow"} for op in ("create", "read", "update", "delete")}}}
    async with stack("sqlite", tmp_path, nats_url, collections=allow) as st:
        for b in range(5):
            docs = [{"id": f"d{b}-{k}", "n": k, "text": uuid.uuid4().hex * 4} for k in range(5000)]
            r = await st.http.post(st.crud("big", "create"), json={"op": "all", "doc": docs}, timeout=60)
            assert r.status_code == 200, r.text
        heavy = {"find": {"$or": [{"text": {"$gt": f"{k:x}"}, "n": {"$lt": k}} for k in range(300)]},
                 "options": {"sort": {"text": 1}, "limit": 1}}
        slow = asyncio.create_task(st.http.post(st.crud("big", "read"), json=heavy, timeout=60))
        await asyncio.sleep(0.3)  # it has started
        finished_while_slow_ran = []
        for k in range(10):
            r = await st.http.post(st.crud("big", "read"), json={"find": {"id": f"d1-{k}"}}, timeout=60)
            assert r.status_code == 200 and r.json()["result"][0]["n"] == k, r.text
            finished_while_slow_ran.append(not slow.done())
        assert (await slow).status_code == 200
        assert all(finished_while_slow_ran), finished_while_slow_ran
