"""Mission Control's users endpoints (gateway/admin_users.py): list and search without a hash, roles,
disable (sign-in and every gateway's token check honour it), delete, password reset."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.config import load
from tests.gateway.admin_support import AdminStack, admin_stack, sign_up
from tests.support.servers import gateway
from tests.support.stack import database_params

RULES = {"users": {"rules": {"read": {"rule": "authenticated"}}},
         "notes": {"rules": {"read": {"rule": "authenticated"}}}}


@pytest.fixture
async def st(tmp_path: Path, nats_url: str) -> AsyncIterator[AdminStack]:
    async with admin_stack(tmp_path, nats_url, collections=RULES) as s:
        yield s


def signin(st: AdminStack, email: str, password: str) -> tuple[str, dict[str, str]]:
    return (f"/v1/api/{st.project}/auth/{st.alias}/email/signin", {"email": email, "pass": password})


async def read_notes(st: AdminStack, http: httpx.AsyncClient, token: str) -> int:
    r = await http.post(st.crud("notes", "read"), json={}, headers={"Authorization": f"Bearer {token}"})
    return r.status_code


@pytest.mark.parametrize("db", database_params())
async def test_list_and_search_never_show_a_hash(tmp_path: Path, nats_url: str, db: str) -> None:
    async with admin_stack(tmp_path, nats_url, db=db, collections=RULES) as st:
        for name, email in (("Ann", "ann@example.com"), ("Bob", "bob@example.com"), ("Anita", "zed@example.com")):
            await sign_up(st, email, name=name)
        url = st.url(f"users/{st.alias}")
        r = await st.http.get(url, headers=st.admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [u["email"] for u in body["users"]] == ["ann@example.com", "bob@example.com", "zed@example.com"]
        assert body["total"] == 3 and body["idField"] == st.id
        text = json.dumps(body)
        assert "pass" not in text and "hash" not in text and "argon2" not in text
        r = await st.http.get(url, headers=st.admin, params={"q": "AN"})  # the email's prefix, any case
        assert [u["email"] for u in r.json()["users"]] == ["ann@example.com"]
        r = await st.http.get(url, headers=st.admin, params={"q": "An"})  # the email's or the name's
        assert {u["email"] for u in r.json()["users"]} == {"ann@example.com", "zed@example.com"}
        bob = next(u for u in body["users"] if u["name"] == "Bob")
        r = await st.http.get(url, headers=st.admin, params={"q": bob[st.id]})
        assert [u["email"] for u in r.json()["users"]] == ["bob@example.com"]
        r = await st.http.get(url, headers=st.admin, params={"skip": "1", "limit": "1"})
        assert [u["email"] for u in r.json()["users"]] == ["bob@example.com"] and r.json()["total"] == 3
        for bad in ({"limit": "0"}, {"limit": "201"}, {"skip": "-1"}, {"limit": "many"}):
            assert (await st.http.get(url, headers=st.admin, params=bad)).status_code == 400, bad


async def test_role_disable_enable(st: AdminStack, tmp_path: Path, nats_url: str) -> None:
    signed = await sign_up(st, "ann@example.com")
    uid, token = signed["user"]["id"], signed["token"]
    url = st.url(f"users/{st.alias}/{uid}")
    for bad in ({}, {"role": ""}, {"role": 5}, {"disabled": "yes"}, {"email": "x@example.com"},
                {"role": "a", "pass": "x"}):
        r = await st.http.post(url, headers=st.admin, json=bad)
        assert r.status_code == 400, bad
    assert (await st.http.post(st.url(f"users/{st.alias}/nobody"), headers=st.admin,
                               json={"role": "x"})).status_code == 404

    r = await st.http.post(url, headers=st.admin, json={"role": "editor"})
    assert r.status_code == 200 and r.json()["user"]["role"] == "editor" and "pass" not in r.json()["user"]
    path, body = signin(st, "ann@example.com", "pw-123456")
    r = await st.http.post(path, json=body)
    assert r.status_code == 200 and r.json()["user"]["role"] == "editor"

    # a second gateway on the same bus and config: it learns who is disabled from the change events
    async with gateway(load(st.path, env={}), nats_url) as other, httpx.AsyncClient(base_url=other.url) as http2:
        await asyncio.sleep(0.2)
        assert await read_notes(st, st.http, token) == 200
        assert await read_notes(st, http2, token) == 200
        r = await st.http.post(url, headers=st.admin, json={"disabled": True})
        assert r.status_code == 200 and r.json()["user"]["disabled"] is True
        assert await read_notes(st, st.http, token) == 401  # at once on this gateway
        for _ in range(100):
            if await read_notes(st, http2, token) == 401:
                break
            await asyncio.sleep(0.05)
        assert await read_notes(st, http2, token) == 401  # and on the other one
        r = await st.http.post(path, json=body)
        assert r.status_code == 403 and "disabled" in r.json()["error"]
        r = await st.http.post(path, json={**body, "pass": "wrong"})
        assert r.status_code == 401  # a wrong password learns nothing about the account

        r = await st.http.post(url, headers=st.admin, json={"disabled": False})
        assert r.status_code == 200
        assert await read_notes(st, st.http, token) == 200
        for _ in range(100):
            if await read_notes(st, http2, token) == 200:
                break
            await asyncio.sleep(0.05)
        assert await read_notes(st, http2, token) == 200
        assert (await st.http.post(path, json=body)).status_code == 200

    # a gateway that starts later reads who is disabled
    await st.http.post(url, headers=st.admin, json={"disabled": True})
    async with gateway(load(st.path, env={}), nats_url) as late, httpx.AsyncClient(base_url=late.url) as http3:
        for _ in range(100):
            if await read_notes(st, http3, token) == 401:
                break
            await asyncio.sleep(0.05)
        assert await read_notes(st, http3, token) == 401


async def test_password_reset_and_delete(st: AdminStack) -> None:
    signed = await sign_up(st, "ann@example.com")
    uid, token = signed["user"]["id"], signed["token"]
    password = st.url(f"users/{st.alias}/{uid}/password")
    for bad in ({}, {"pass": ""}, {"pass": 5}):
        assert (await st.http.post(password, headers=st.admin, json=bad)).status_code == 400, bad
    assert (await st.http.post(st.url(f"users/{st.alias}/nobody/password"), headers=st.admin,
                               json={"pass": "x"})).status_code == 404
    r = await st.http.post(password, headers=st.admin, json={"pass": "brand-new-pass"})
    assert r.status_code == 200, r.text
    path, body = signin(st, "ann@example.com", "pw-123456")
    assert (await st.http.post(path, json=body)).status_code == 401
    assert (await st.http.post(path, json={**body, "pass": "brand-new-pass"})).status_code == 200
    # the hash is where it belongs, never in users
    r = await st.http.post(st.url(f"data/{st.alias}/users/read"), headers=st.admin, json={})
    assert "pass" not in r.json()["result"][0]

    url = st.url(f"users/{st.alias}/{uid}")
    r = await st.http.delete(url, headers=st.admin)
    assert r.status_code == 200 and r.json()["user"]["email"] == "ann@example.com"
    assert (await st.http.delete(url, headers=st.admin)).status_code == 404
    assert (await st.http.post(path, json={**body, "pass": "brand-new-pass"})).status_code == 401
    assert await read_notes(st, st.http, token) == 401  # their tokens end with them
    r = await st.http.get(st.url(f"users/{st.alias}"), headers=st.admin)
    assert r.json()["users"] == []
    # the email can be used again, and its new account works
    again = await sign_up(st, "ann@example.com", password="another-pass")
    assert await read_notes(st, st.http, again["token"]) == 200


async def test_without_email_sign_in_there_are_no_users(tmp_path: Path, nats_url: str) -> None:
    async with admin_stack(tmp_path, nats_url, email=False) as st:
        r = await st.http.get(st.url(f"users/{st.alias}"), headers=st.admin)
        assert r.status_code == 404 and "email sign-in is not enabled" in r.json()["error"]
        r = await st.http.get(st.url("users/nope"), headers=st.admin)
        assert r.status_code == 404
