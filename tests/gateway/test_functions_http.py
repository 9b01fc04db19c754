"""Calling functions over HTTP exactly as the official client's `api.call()` does, and every error."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from gateway import tokens
from sdk import Mesh
from tests.support.servers import SECRET, RunningGateway, gateway, project_config

ALLOW = {"rule": "allow"}
FUNCTIONS = {
    "enabled": True,
    "services": {
        "calc": {
            "functions": {
                "add": {"rule": ALLOW},
                "secret": {"rule": {"rule": "authenticated"}},
                "forbidden": {"rule": {"rule": "deny"}},
                "default": {"rule": ALLOW},
            }
        },
        "nofn": {"functions": {"other": {"rule": ALLOW}}},
    },
}


@pytest.fixture
def project() -> str:
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture
async def gw(nats_url: str, project: str) -> AsyncIterator[RunningGateway]:
    cfg = project_config(project, functions=FUNCTIONS, gateway={"maxBodyBytes": 4096})
    async with gateway(cfg, nats_url) as running:
        yield running


@pytest.fixture
async def calc(nats_url: str, project: str) -> AsyncIterator[Mesh]:
    svc = Mesh("calc", project=project, nats_url=nats_url)

    @svc.function
    async def add(params: dict[str, Any], auth: Any) -> Any:
        return params["a"] + params["b"]

    @svc.function
    async def secret(params: Any, auth: Any) -> Any:
        return {"auth": auth}

    @svc.function
    async def forbidden(params: Any, auth: Any) -> str:
        return "never"

    @svc.function
    async def boom(params: Any, auth: Any) -> None:
        raise RuntimeError("kaboom: the flux capacitor")

    @svc.function
    async def nap(params: Any, auth: Any) -> str:
        await asyncio.sleep(1.5)
        return "rested"

    async with svc:
        yield svc


@pytest.fixture
async def http(gw: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
        yield client


def token(project: str, **claims: Any) -> str:
    return tokens.issue({"id": "u1", "email": "a@b.c", "role": "user", **claims}, secret=SECRET, project=project,
                        ttl=60)


async def test_call_as_the_official_client_sends_it(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/add", json={"params": {"a": 2, "b": 3}, "timeout": 5000},
                        headers={"Content-Type": "application/json", "Origin": "http://app.example"})
    assert r.status_code == 200
    assert r.json() == {"result": 5}
    assert r.headers["access-control-allow-origin"] == "http://app.example"
    assert r.headers["access-control-allow-credentials"] == "true"


async def test_cors_preflight(http: httpx.AsyncClient, project: str) -> None:
    r = await http.options(f"/v1/api/{project}/functions/calc/add", headers={
        "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 204
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "Authorization" in r.headers["access-control-allow-headers"]


async def test_claims_reach_the_function_as_auth(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    t = token(project)
    r = await http.post(f"/v1/api/{project}/functions/calc/secret", json={"params": {}},
                        headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 200
    auth = r.json()["result"]["auth"]
    assert (auth["id"], auth["email"], auth["role"]) == ("u1", "a@b.c", "user")


async def test_rules_authenticated_deny_and_default_deny(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/secret", json={"params": {}})
    assert r.status_code == 401 and r.json()["error"]
    r = await http.post(f"/v1/api/{project}/functions/calc/forbidden", json={"params": {}},
                        headers={"Authorization": f"Bearer {token(project)}"})
    assert r.status_code == 403 and r.json()["error"]
    # service `nofn` has rules, but none for this function and no default: deny
    r = await http.post(f"/v1/api/{project}/functions/nofn/anything", json={"params": {}},
                        headers={"Authorization": f"Bearer {token(project)}"})
    assert r.status_code == 403 and r.json() == {"error": "Auth: No rule has been provided"}
    # a service with no rules at all
    r = await http.post(f"/v1/api/{project}/functions/unknown/fn", json={"params": {}})
    assert r.status_code == 403


@pytest.mark.parametrize("bad", [
    "not-a-jwt",
    jwt.encode({"id": "u1"}, "another-secret-key-0123456789-0123456789", algorithm="HS256"),
    jwt.encode({"id": "u1", "exp": int(time.time()) - 10}, SECRET, algorithm="HS256"),
    jwt.encode({"id": "u1"}, "", algorithm="none"),
])
async def test_forged_tokens_are_refused(http: httpx.AsyncClient, project: str, calc: Mesh, bad: str) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/secret", json={"params": {}},
                        headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert r.json() == {"error": "Auth: invalid or expired token"}


async def test_token_for_another_project_is_refused(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/secret", json={"params": {}},
                        headers={"Authorization": f"Bearer {token('other')}"})
    assert r.status_code == 401


async def test_function_error_is_500_without_traceback(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/boom", json={"params": {}})
    assert r.status_code == 500
    assert r.json() == {"error": "kaboom: the flux capacitor"}
    assert "Traceback" not in r.text


async def test_no_instance_is_503_at_once(http: httpx.AsyncClient, project: str) -> None:
    started = time.monotonic()
    r = await http.post(f"/v1/api/{project}/functions/calc/add", json={"params": {"a": 1, "b": 1}, "timeout": 8000})
    assert r.status_code == 503
    assert "no instance" in r.json()["error"]
    assert time.monotonic() - started < 4


async def test_timeout_is_504(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/nap", json={"params": {}, "timeout": 200})
    assert r.status_code == 504
    assert r.json()["error"]


@pytest.mark.parametrize(("body", "fragment"), [
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be an object"),
    (b'{"params": {}, "timeout": "soon"}', "timeout"),
    (b'{"params": {}, "timeout": -5}', "timeout"),
    (b'{"params": {}, "timeout": true}', "timeout"),
])
async def test_bad_bodies_are_400(http: httpx.AsyncClient, project: str, calc: Mesh, body: bytes,
                                  fragment: str) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/add", content=body,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert fragment in r.json()["error"]


async def test_bad_names_are_400(http: httpx.AsyncClient, project: str) -> None:
    r = await http.post(f"/v1/api/{project}/functions/calc/a%20b", json={"params": {}})
    assert r.status_code == 400


async def test_oversized_body_is_413(http: httpx.AsyncClient, project: str, calc: Mesh) -> None:
    big = {"params": {"a": "x" * 10_000, "b": "y"}}
    r = await http.post(f"/v1/api/{project}/functions/calc/add", json=big)
    assert r.status_code == 413
    assert "limit" in r.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit still holds
        for _ in range(10):
            yield b" " * 1000

    r = await http.post(f"/v1/api/{project}/functions/calc/add", content=chunks())
    assert r.status_code == 413


async def test_unknown_project_is_404(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/api/nope/functions/calc/add", json={"params": {}})
    assert r.status_code == 404
    assert "nope" in r.json()["error"]


async def test_discovery_endpoint(http: httpx.AsyncClient, gw: RunningGateway, project: str, calc: Mesh) -> None:
    r = await http.get(f"/v1/api/{project}/services")
    assert r.status_code == 401  # what runs is the admin's business
    user = token(project)
    r = await http.get(f"/v1/api/{project}/services", headers={"Authorization": f"Bearer {user}"})
    assert r.status_code == 401
    admin = tokens.issue_admin("root", secret=gw.gw.security.admin_secret)
    r = await http.get(f"/v1/api/{project}/services", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200
    [svc] = [s for s in r.json()["services"] if s["name"] == "calc"]
    assert svc["functions"] == ["add", "boom", "forbidden", "nap", "secret"]
    assert [i["id"] for i in svc["instances"]] == [calc.instance_id]
