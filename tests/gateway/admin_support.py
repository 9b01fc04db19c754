"""A stack for the admin endpoints of Mission Control: a config file (edits are written back to it), a db
worker that follows config changes (as `space-cloud run`'s does), a gateway, and an admin token."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.config import load
from tests.support.servers import SECRET, RunningGateway, gateway
from tests.support.stack import ALIASES, conn_for
from worker import DbWorker

ADMIN_USER, ADMIN_PASS = "root", "hunter2-long-enough"
ADMIN_SECRET = "admin-secret-0123456789-0123456789"


@dataclass
class AdminStack:
    gw: RunningGateway
    http: httpx.AsyncClient
    project: str
    alias: str
    id: str
    path: Path
    token: str

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, rest: str) -> str:
        return f"/v1/api/config/projects/{self.project}/{rest}"

    def crud(self, col: str, op: str) -> str:
        return f"/v1/api/{self.project}/crud/{self.alias}/{col}/{op}"

    def saved(self) -> dict[str, Any]:
        """This project as the config file holds it now."""
        projects = yaml.safe_load(self.path.read_text())["projects"]
        found: dict[str, Any] = next(p for p in projects if p["id"] == self.project)
        return found


@contextlib.asynccontextmanager
async def admin_stack(tmp: Path, nats_url: str, *, db: str = "sqlite", collections: dict[str, Any] | None = None,
                      functions: dict[str, Any] | None = None, email: bool = True) -> AsyncIterator[AdminStack]:
    project = "p" + uuid.uuid4().hex[:10]
    alias = ALIASES[db]
    modules: dict[str, Any] = {
        "crud": {alias: {"type": db, "conn": await conn_for(db, tmp), "collections": collections or {}}},
        "functions": functions or {"enabled": True},
    }
    if email:
        modules["auth"] = {"email": {"enabled": True}}
    raw = {"projects": [{"id": project, "secret": SECRET, "modules": modules}],
           "admin": {"users": [{"user": ADMIN_USER, "pass": ADMIN_PASS}], "secret": ADMIN_SECRET}}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cfg = load(path, env={})
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    try:
        async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=15) as http:
            gw.gw.core.config_listeners.append(lambda c: worker.update(c.databases()))
            r = await http.post("/v1/api/config/login", json={"user": ADMIN_USER, "pass": ADMIN_PASS})
            assert r.status_code == 200, r.text
            yield AdminStack(gw, http, project, alias, "_id" if db == "mongo" else "id", path, r.json()["token"])
    finally:
        await worker.stop()


PASSWORD = "pw-123456"


async def sign_up(st: AdminStack, email: str, password: str = PASSWORD, name: str = "Ann") -> dict[str, Any]:
    r = await st.http.post(f"/v1/api/{st.project}/auth/{st.alias}/email/signup",
                           json={"email": email, "name": name, "pass": password, "role": "user"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body
