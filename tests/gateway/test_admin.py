"""Admin login and the config API: an admin token is needed unless --dev; edits apply without restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import load
from tests.support.servers import SECRET, gateway, project_config


def config_file(tmp_path: Path, project: str) -> Path:
    raw = project_config(project, functions={"services": {"calc": {"functions": {"add": {"rule": {"rule": "deny"}}}}}},
                         admin={"users": [{"user": "root", "pass": "hunter2-long"}],
                                "secret": "admin-secret-0123456789-0123456789"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def project() -> str:
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture
async def http(tmp_path: Path, project: str, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway(load(config_file(tmp_path, project), env={}), nats_url) as gw, \
            httpx.AsyncClient(base_url=gw.url) as client:
        yield client


async def test_login(http: httpx.AsyncClient, project: str) -> None:
    r = await http.post("/v1/api/config/login", json={"user": "root", "pass": "nope"})
    assert r.status_code == 401
    r = await http.post("/v1/api/config/login", json={"user": "root", "pass": 5})
    assert r.status_code == 400
    r = await http.post("/v1/api/config/login", json={"user": "root", "pass": "hunter2-long"})
    assert r.status_code == 200 and r.json()["projects"] == [project]


async def test_config_api_needs_admin_and_applies_edits(http: httpx.AsyncClient, project: str,
                                                        tmp_path: Path) -> None:
    assert (await http.get("/v1/api/config/projects")).status_code == 401
    user_token = {"Authorization": "Bearer not-an-admin-token"}
    assert (await http.get("/v1/api/config/projects", headers=user_token)).status_code == 401
    token = (await http.post("/v1/api/config/login", json={"user": "root", "pass": "hunter2-long"})).json()["token"]
    admin = {"Authorization": f"Bearer {token}"}
    projects: list[dict[str, Any]] = (await http.get("/v1/api/config/projects", headers=admin)).json()["projects"]
    assert [p["id"] for p in projects] == [project]

    r = await http.post(f"/v1/api/{project}/functions/calc/add", json={"params": {}})
    assert r.status_code == 401  # deny, and no token was sent
    edited = projects[0]
    edited["modules"]["functions"]["services"]["calc"]["functions"]["add"]["rule"] = {"rule": "allow"}
    r = await http.post("/v1/api/config/projects", headers=admin, json=edited)
    assert r.status_code == 200
    # applied without a restart: the rule now allows (no instance runs, so 503 instead of 403)
    r = await http.post(f"/v1/api/{project}/functions/calc/add", json={"params": {}})
    assert r.status_code == 503
    # and written back to the file
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["projects"][0]["modules"]["functions"]["services"]["calc"]["functions"]["add"]["rule"] == {
        "rule": "allow"}
    # an invalid config is refused and changes nothing
    r = await http.post("/v1/api/config/projects", headers=admin, json={"id": "bad id", "secret": SECRET})
    assert r.status_code == 400 and "invalid config" in r.json()["error"]
    assert [p["id"] for p in (await http.get("/v1/api/config/projects", headers=admin)).json()["projects"]] == [
        project]


async def test_dev_relaxes_admin_auth(tmp_path: Path, project: str, nats_url: str) -> None:
    async with gateway(load(config_file(tmp_path, project), env={}), nats_url, dev=True) as gw, \
            httpx.AsyncClient(base_url=gw.url) as http:
        assert (await http.get("/v1/api/config/projects")).status_code == 200
        assert (await http.get("/v1/api/config/env")).json() == {"isProd": False}


async def test_repeated_admin_login_failures_back_off(http: httpx.AsyncClient) -> None:
    codes = [(await http.post("/v1/api/config/login", json={"user": "root", "pass": "guess"})).status_code
             for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and 429 in codes[3:]
