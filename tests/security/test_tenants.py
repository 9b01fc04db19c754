"""Attacks by another tenant: two projects in one config, on ONE database (the same PostgreSQL database,
MariaDB database, SQLite file or Mongo server), with the same collection names and open rules.

Project B's user, with B's own token and B's own (generous) rules, must never see, change or delete
A's data, never sign in to A, and never reach A's users; and B's token is worth nothing on A.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import parse
from tests.support.live import LiveClient
from tests.support.servers import SECRET, RunningGateway, gateway
from tests.support.stack import ALIASES, conn_for, database_params
from worker import DbWorker

OPEN = {op: {"rule": "allow"} for op in ("create", "read", "update", "delete", "aggr")}


@dataclass
class Tenants:
    gw: RunningGateway
    http: httpx.AsyncClient
    a: str
    b: str
    alias: str
    id: str

    def crud(self, project: str, col: str, kind: str) -> str:
        return f"/v1/api/{project}/crud/{self.alias}/{col}/{kind}"

    def auth(self, project: str, path: str) -> str:
        return f"/v1/api/{project}/auth/{self.alias}/{path}"


@contextlib.asynccontextmanager
async def tenants(db: str, tmp: Path, nats_url: str) -> AsyncIterator[Tenants]:
    a, b = "a" + uuid.uuid4().hex[:8], "b" + uuid.uuid4().hex[:8]
    alias, conn = ALIASES[db], await conn_for(db, tmp)  # one database for both projects

    def project(pid: str, roles: list[str]) -> dict[str, Any]:
        return {"id": pid, "secret": SECRET + pid, "modules": {
            "crud": {alias: {"type": db, "conn": conn, "collections": {
                "default": {"rules": OPEN, "isRealtimeEnabled": True},
                "users": {"rules": OPEN, "isRealtimeEnabled": True}}}},
            "auth": {"email": {"enabled": True, "signupRoles": roles}}}}

    cfg = parse({"projects": [project(a, ["user"]), project(b, ["user", "admin"])]}, env={}, base=tmp)
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    try:
        async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=15) as http:
            yield Tenants(gw, http, a, b, alias, "_id" if db == "mongo" else "id")
    finally:
        await worker.stop()


@pytest.fixture(params=database_params())
async def t(request: pytest.FixtureRequest, tmp_path: Path, nats_url: str) -> AsyncIterator[Tenants]:
    async with tenants(request.param, tmp_path, nats_url) as value:
        yield value


async def test_another_tenant_never_reaches_this_tenants_data(t: Tenants) -> None:
    doc = {t.id: "shared-id", "owner": "A", "secret": "a-only"}
    assert (await t.http.post(t.crud(t.a, "todos", "create"), json={"op": "one", "doc": doc})).status_code == 200
    lc = await LiveClient.connect(t.gw.ws_url, t.b)
    try:
        assert (await lc.subscribe("spy", "todos", t.alias, {}))["ack"] is True
        # B's API, B's rules (everything allowed), the same collection name and the same id
        for kind, body in [("read", {"find": {}}), ("read", {"op": "count", "find": {}}),
                           ("read", {"op": "distinct", "options": {"distinct": "secret"}}),
                           ("aggr", {"pipe": [{"$match": {}}]})]:
            r = await t.http.post(t.crud(t.b, "todos", kind), json=body)
            assert r.status_code == 200 and "a-only" not in r.text, (kind, r.text)
        r = await t.http.post(t.crud(t.b, "todos", "update"), json={
            "op": "all", "find": {}, "update": {"$set": {"secret": "pwned"}}})
        assert r.status_code == 200
        r = await t.http.post(t.crud(t.b, "todos", "delete"), json={"op": "all", "find": {}})
        assert r.status_code == 200
        # the same id is free in B: B gets its own row, not A's
        r = await t.http.post(t.crud(t.b, "todos", "create"), json={"op": "one", "doc": {t.id: "shared-id"}})
        assert r.status_code == 200, r.text
        # A's row is untouched, and B's live query never heard of it
        r = await t.http.post(t.crud(t.a, "todos", "read"), json={"find": {}})
        assert [d["secret"] for d in r.json()["result"]] == ["a-only"]
        await t.http.post(t.crud(t.a, "todos", "update"), json={
            "op": "all", "find": {}, "update": {"$set": {"n": 1}}})
        await lc.until(lambda: "shared-id" in lc.snapshot("spy"))  # B's own insert arrives
        assert all("a-only" not in str(f) and f["payload"].get("owner") != "A" for f in lc.feeds)
    finally:
        await lc.close()


async def test_signing_up_on_one_tenant_gives_nothing_on_the_other(t: Tenants) -> None:
    email = f"mallory-{uuid.uuid4().hex[:6]}@example.com"
    r = await t.http.post(t.auth(t.b, "email/signup"),
                          json={"email": email, "name": "M", "pass": "pw-123", "role": "admin"})
    assert r.status_code == 200, r.text  # B allows choosing admin
    b_token = r.json()["token"]
    # the same credentials on A: no such user there
    r = await t.http.post(t.auth(t.a, "email/signin"), json={"email": email, "pass": "pw-123"})
    assert r.status_code == 401
    # B's admin token is refused by A's API
    r = await t.http.post(t.crud(t.a, "todos", "read"), json={"find": {}},
                          headers={"Authorization": f"Bearer {b_token}"})
    assert r.status_code == 401
    # A's users are not B's users
    r = await t.http.post(t.crud(t.a, "users", "read"), json={"find": {}})
    assert email not in r.text
    r = await t.http.post(t.auth(t.a, "email/signup"), json={"email": email, "name": "A's", "pass": "other-pw"})
    assert r.status_code == 200, "the email is taken only in B"
