"""Mission Control, the admin UI: a dependency-free single page served at `/mission-control`.

- `GET /mission-control` and `GET /mission-control/` serve `gateway/mission_control/index.html`;
  `GET /mission-control/<file>` serves the page's assets from that folder (GET and HEAD only).
  The page references its assets by absolute path, so both URLs work without a redirect.
- Files are found with `gateway.files.safe_file` (no `..`, no hidden files, no symlink escapes,
  no NUL or backslash) and sent with the same content types and `cache-control: no-cache`.
- The page itself is public: it holds no data. Everything it shows comes from the admin API
  (`/v1/api/config/...`: gateway/admin.py and, for its views, gateway/admin_data.py, admin_users.py,
  admin_rules.py), which needs an admin token unless the server runs with `--dev`, from service
  discovery (`/v1/api/<project>/services`), `/metrics` and `/v1/api/health`.
- Its entry in the route table (`/mission-control/{rest:path}`) has a longer prefix than a project's
  static catch-all, so a project's static route with a `/` prefix can never shadow (or spoof) the admin UI.
- Responses carry a strict Content-Security-Policy (same-origin scripts, styles and requests only,
  no framing), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

from pathlib import Path

from common.errors import NotFound
from gateway.files import file_response, package_folder, safe_file
from gateway.http import Request

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


class MissionControl:
    """GET/HEAD under `/mission-control` served from `gateway/mission_control/` (package data)."""

    def __init__(self) -> None:
        self.ui_dir = package_folder("gateway", "mission_control")

    def find(self, path: str) -> Path | None:
        """The file of the UI that `path` names, or None (also for paths outside `/mission-control`)."""
        if path == PREFIX:
            rest = "/"
        elif path.startswith(PREFIX + "/"):
            rest = path[len(PREFIX):]
        else:
            return None
        return safe_file(self.ui_dir, rest)

    async def serve(self, request: Request) -> None:
        found = self.find(request.path)
        if found is None:
            raise NotFound("not found")
        response = file_response(found)
        response.headers.update(SECURITY_HEADERS)
        await response(request.scope, request.receive, request.send)
