"""Mission Control, the admin UI: a dependency-free single page served at `/mission-control`.

- `GET /mission-control` and `GET /mission-control/` serve `gateway/mission_control/index.html`;
  `GET /mission-control/<file>` serves the page's assets from that folder (GET and HEAD only).
  The page references its assets by absolute path, so both URLs work without a redirect.
- Files are found with `gateway.static.safe_file` (no `..`, no hidden files, no symlink escapes,
  no NUL or backslash) and sent with the same content types and `cache-control: no-cache`.
- The page itself is public: it holds no data. Everything it shows comes from the config API
  (`/v1/api/config/...`), which needs an admin token unless the server runs with `--dev`
  (gateway/admin.py), and from service discovery (`/v1/api/<project>/services`).
- It is served by a small ASGI middleware, added after the projects' static routes so that it is
  the outer one: a project's static route with a `/` prefix can never shadow (or spoof) the admin UI.
- Responses carry a strict Content-Security-Policy (same-origin scripts, styles and requests only,
  no framing), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.responses import Response

from gateway.http import ASGIApp, Receive, Scope, Send
from gateway.static import file_response, safe_file

if TYPE_CHECKING:
    from gateway.server import Gateway

UI_DIR = Path(__file__).resolve().parent / "mission_control"
"""`gateway/mission_control/`: index.html, app.js, style.css."""

PREFIX = "/mission-control"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def find(path: str) -> Path | None:
    """The file of the UI that `path` names, or None (also for paths outside `/mission-control`)."""
    if path == PREFIX:
        rest = "/"
    elif path.startswith(PREFIX + "/"):
        rest = path[len(PREFIX):]
    else:
        return None
    return safe_file(UI_DIR, rest)


class MissionControl:
    """ASGI middleware: GET/HEAD under `/mission-control` served from `gateway/mission_control/`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == PREFIX or path.startswith(PREFIX + "/"):
                if scope["method"] not in ("GET", "HEAD"):
                    response = Response(b'{"error":"method not allowed"}', status_code=405,
                                        media_type="application/json", headers={"allow": "GET, HEAD"})
                else:
                    found = find(path)
                    if found is None:
                        response = Response(b'{"error":"not found"}', status_code=404, media_type="application/json")
                    else:
                        response = file_response(found)
                        response.headers.update(SECURITY_HEADERS)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_routes(app: FastAPI, gw: Gateway) -> None:
    """Serve Mission Control. Call after `gateway.static.add_routes` (the last middleware added is the outer one)."""
    del gw  # the page reads everything through the API; nothing here depends on the config
    app.add_middleware(MissionControl)
