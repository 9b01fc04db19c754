"""Static files: the browser client at a stable URL, and each project's static routes (Space Cloud hosting).

- `GET /v1/api/sdk/<file>.js` serves `sdk/js/` (the dependency-free ES module client and its
  siblings), so a page imports `/v1/api/sdk/space-api.js` with no build step.
- A project's `modules.static.routes` / `gateway.routes` (`[{prefix, path}]`, absolute paths from
  gateway/config.py) are served for GET/HEAD by a small ASGI middleware that runs before routing: it
  never touches `/v1/...`, so a `/` prefix can serve a whole app without shadowing the API, and it
  reads the *current* config on every request (config edits apply without a restart). The longest
  matching prefix wins; a directory serves its `index.html`; a file that is not there falls through
  to the API's JSON 404.
- Paths are resolved and must stay inside the route's folder (no `..`, no symlink escapes, no
  hidden files, no NUL or backslash).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.responses import FileResponse, Response

from gateway.http import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from gateway.server import Gateway

SDK_DIR = Path(__file__).resolve().parent.parent / "sdk" / "js"
"""`sdk/js/` next to this package (in a checkout and in an installed wheel alike)."""

SDK_PREFIX = "/v1/api/sdk/"

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
}


def content_type(path: Path) -> str:
    known = TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def safe_file(root: Path, relative: str) -> Path | None:
    """The file `relative` names inside `root`, or None if it is not a servable file there.

    `relative` is a URL path (already percent-decoded by the server). Refuses `..`, hidden
    segments, backslashes and NULs outright, then checks the resolved path (symlinks followed)
    is still inside the resolved root. A directory gives its `index.html`.
    """
    if "\x00" in relative or "\\" in relative:
        return None
    parts = [p for p in relative.split("/") if p]
    if any(p == ".." or p.startswith(".") for p in parts):
        return None
    try:
        base = root.resolve(strict=True)
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(base):
        return None
    if target.is_dir():
        target = target / "index.html"
        if not target.is_file():
            return None
    if not target.is_file() or not os.access(target, os.R_OK):
        return None
    return target


def file_response(path: Path) -> Response:
    # no-cache = revalidate every time (ETag/Last-Modified), so edited files show up at once.
    return FileResponse(path, media_type=content_type(path), headers={"cache-control": "no-cache"})


def _match(prefix: str, path: str) -> str | None:
    """The rest of `path` under `prefix` (segment-wise: `/app` matches `/app` and `/app/x`, not `/apple`)."""
    prefix = "/" + prefix.strip("/")
    if prefix == "/":
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):] or "/"
    return None


class StaticRoutes:
    """ASGI middleware: GET/HEAD outside `/v1/` served from the projects' static routes, if a file is there."""

    def __init__(self, app: ASGIApp, gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    def find(self, path: str) -> Path | None:
        routes = [r for p in self.gw.config.projects.values() for r in p.static]
        routes.sort(key=lambda r: len("/" + r["prefix"].strip("/")), reverse=True)
        for route in routes:
            rest = _match(route["prefix"], path)
            if rest is None:
                continue
            found = safe_file(Path(route["path"]), rest)
            if found is not None:
                return found
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            if path != "/v1" and not path.startswith("/v1/"):
                found = self.find(path)
                if found is not None:
                    await file_response(found)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def add_routes(app: FastAPI, gw: Gateway) -> None:
    """The SDK route, and the middleware serving every project's static routes."""

    @app.api_route(SDK_PREFIX + "{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def sdk_file(name: str) -> Response:
        found = safe_file(SDK_DIR, name) if name.endswith(".js") else None
        if found is None:
            return Response(b'{"error":"not found"}', status_code=404, media_type="application/json")
        return file_response(found)

    app.add_middleware(StaticRoutes, gw=gw)
