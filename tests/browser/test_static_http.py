"""Static hosting (gateway/static.py) over real HTTP: the SDK URL, project routes, and path traversal.

Raw requests go over a plain socket so that `..` and encoded segments reach the server as sent.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse
from tests.support.servers import SECRET, gateway

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "todo" / "config.yaml"


async def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def site(tmp: Path) -> dict[str, Any]:
    public = tmp / "public"
    (public / "sub").mkdir(parents=True)
    (public / "index.html").write_text("<h1>home</h1>")
    (public / "app.js").write_text("export const x = 1;")
    (public / "style.css").write_text("body{}")
    (public / "sub" / "index.html").write_text("sub index")
    (public / ".env").write_text("SECRET=1")
    (public / "v1").mkdir()
    (public / "v1" / "api").write_text("must never be served")
    (tmp / "secret.txt").write_text("outside the root")
    os.symlink(tmp / "secret.txt", public / "escape.txt")
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "index.html").write_text("docs home")
    (docs / "guide.txt").write_text("guide")
    project = {
        "id": "site", "secret": SECRET,
        "modules": {"static": {"routes": [{"prefix": "/", "path": "public"}, {"prefix": "/docs", "path": "docs"}]}},
    }
    return {"projects": [project]}


async def test_sdk_is_served_at_a_stable_url(nats_url: str, tmp_path: Path) -> None:
    async with gateway(site(tmp_path), nats_url, base=tmp_path) as gw:
        for name in ("space-api.js", "db.js", "realtime.js"):
            status, headers, body = await raw_get(gw.port, f"/v1/api/sdk/{name}")
            assert status == 200, name
            assert headers["content-type"] == "text/javascript; charset=utf-8"
            assert b"export" in body
        status, headers, _ = await raw_get(gw.port, "/v1/api/sdk/space-api.js", "HEAD")
        assert status == 200 and int(headers["content-length"]) > 1000
        for bad in ("/v1/api/sdk/nope.js", "/v1/api/sdk/..%2f..%2fgateway%2fconfig.py", "/v1/api/sdk/%2e%2e",
                    "/v1/api/sdk/../../gateway/static.py", "/v1/api/sdk/README"):
            status, headers, body = await raw_get(gw.port, bad)
            assert status == 404, bad
            assert b"def " not in body and b"import" not in body


async def test_project_routes_serve_files_without_shadowing_the_api(nats_url: str, tmp_path: Path) -> None:
    async with gateway(site(tmp_path), nats_url, base=tmp_path) as gw:
        status, headers, body = await raw_get(gw.port, "/")
        assert (status, body) == (200, b"<h1>home</h1>")
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert (await raw_get(gw.port, "/app.js"))[1]["content-type"] == "text/javascript; charset=utf-8"
        assert (await raw_get(gw.port, "/style.css"))[1]["content-type"] == "text/css; charset=utf-8"
        assert (await raw_get(gw.port, "/sub"))[2] == b"sub index"
        assert (await raw_get(gw.port, "/sub/"))[2] == b"sub index"
        assert (await raw_get(gw.port, "/docs"))[2] == b"docs home"  # the longer prefix wins
        assert (await raw_get(gw.port, "/docs/guide.txt"))[2] == b"guide"
        status, _, body = await raw_get(gw.port, "/missing.html")
        assert (status, body) == (404, b'{"error":"not found"}')
        # /v1 belongs to the API even with a `/` prefix and a `v1/` folder in it
        status, _, body = await raw_get(gw.port, "/v1/api/health")
        assert status == 200 and b'"ok":true' in body
        status, _, body = await raw_get(gw.port, "/v1/api")
        assert status == 404 and b"never" not in body
        # POST is never static
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        assert b"home" not in data


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
    "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt", "/escape.txt", "/.env", "/sub/..%5c..%5csecret.txt",
    "/docs/../secret.txt", "/docs/%2e%2e/secret.txt", "/%00index.html", "/index.html%00.js",
    "//etc/passwd", "/%2fetc%2fpasswd", "/docs/..%2f..%2fsecret.txt",
])
async def test_path_traversal_is_refused(nats_url: str, tmp_path: Path, path: str) -> None:
    async with gateway(site(tmp_path), nats_url, base=tmp_path) as gw:
        status, _, body = await raw_get(gw.port, path)
        assert b"outside the root" not in body
        assert b"SECRET" not in body
        assert b"root:" not in body
        assert status in (400, 404)


async def test_routes_follow_config_changes(nats_url: str, tmp_path: Path) -> None:
    raw = site(tmp_path)
    async with gateway(raw, nats_url, base=tmp_path) as gw:
        assert (await raw_get(gw.port, "/"))[0] == 200
        raw["projects"][0]["modules"]["static"]["routes"] = [{"prefix": "/docs", "path": "docs"}]
        gw.gw.core.apply_config(parse(raw, env={}, base=tmp_path))
        assert (await raw_get(gw.port, "/"))[0] == 404
        assert (await raw_get(gw.port, "/docs/guide.txt"))[2] == b"guide"


async def test_the_todo_example_is_served(nats_url: str) -> None:
    from gateway.config import load

    cfg = load(EXAMPLE_CONFIG)
    async with gateway(cfg, nats_url) as gw:
        status, _, body = await raw_get(gw.port, "/")
        assert status == 200 and b'<script type="module" src="app.js">' in body
        status, _, body = await raw_get(gw.port, "/app.js")
        assert status == 200 and b"/v1/api/sdk/space-api.js" in body
        status, _, _ = await raw_get(gw.port, "/config.yaml")
        assert status == 404
