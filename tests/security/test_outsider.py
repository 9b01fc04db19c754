"""Attacks by an outsider: a web page the developer visits, and anyone who can reach the port."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import yaml

from gateway.config import load
from tests.support.servers import gateway, project_config

EVIL = "http://evil.example"


async def test_dev_mode_config_api_never_answers_another_origin(tmp_path: Path, nats_url: str) -> None:
    project = "p" + uuid.uuid4().hex[:8]
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(project_config(project)))
    async with gateway(load(cfg_file, env={}), nats_url, dev=True) as gw, \
            httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        before = cfg_file.read_text()
        # a page on another origin reads the config (--dev needs no token) ...
        r = await http.get("/v1/api/config/projects", headers={"Origin": EVIL})
        assert r.status_code == 403 and project not in r.text
        assert "access-control-allow-origin" not in r.headers
        # ... or rewrites it with a "simple" request the browser sends without asking first
        evil = {"id": project, "secret": "x" * 40, "modules": {"static": {"routes": [{"prefix": "/", "path": "/"}]}}}
        r = await http.post("/v1/api/config/projects", headers={"Origin": EVIL, "Content-Type": "text/plain"},
                            content=httpx.Response(200, json=evil).content)
        assert r.status_code == 403
        assert cfg_file.read_text() == before
        r = await http.options("/v1/api/config/projects", headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST"})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        r = await http.post("/v1/api/config/login", headers={"Origin": EVIL}, json={"user": "a", "pass": "b"})
        assert r.status_code == 403
        # Mission Control itself (same origin) still works, and so does a request with no Origin (curl)
        own = f"http://127.0.0.1:{gw.port}"
        assert (await http.get("/v1/api/config/projects", headers={"Origin": own})).status_code == 200
        assert (await http.get("/v1/api/config/projects")).status_code == 200
        # the project API still serves pages from anywhere by default (Space Cloud's clients need it)
        r = await http.post(f"/v1/api/{project}/functions/s/f", headers={"Origin": EVIL}, json={})
        assert r.headers["access-control-allow-origin"] == EVIL and "cross-origin" not in r.text


async def test_a_project_can_limit_the_origins_of_its_pages(nats_url: str) -> None:
    project = "p" + uuid.uuid4().hex[:8]
    cfg = project_config(project, crud={"db": {"type": "sqlite", "conn": ":memory:", "collections": {
        "t": {"rules": {"read": {"rule": "allow"}}}}}})
    cfg["projects"][0]["allowedOrigins"] = ["https://app.example"]
    async with gateway(cfg, nats_url) as gw, httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await http.post(f"/v1/api/{project}/crud/db/t/read", headers={"Origin": EVIL}, json={})
        assert r.status_code == 403 and "allowedOrigins" in r.json()["error"]
        r = await http.options(f"/v1/api/{project}/crud/db/t/read", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "https://app.example"


async def test_the_service_list_is_not_public(nats_url: str) -> None:
    project = "p" + uuid.uuid4().hex[:8]
    async with gateway(project_config(project), nats_url) as gw, \
            httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await http.get(f"/v1/api/{project}/services")
        assert r.status_code == 401 and "admin" in r.json()["error"]


async def test_a_half_sent_request_is_dropped_at_its_deadline(nats_url: str) -> None:
    project = "p" + uuid.uuid4().hex[:8]
    async with gateway(project_config(project), nats_url, settings={"body_timeout": 0.5}) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(f"POST /v1/api/{project}/functions/s/f HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{\"params\":".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # the server answers, it does not wait
        assert head.startswith(b"HTTP/1.1 408")
        writer.close()
