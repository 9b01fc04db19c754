"""Static files: the browser client at a stable URL, and each project's static routes (Space Cloud hosting).

- `GET /v1/api/sdk/<file>.js` serves `sdk/js/` (the dependency-free ES module client and its
  siblings, found as package data through `importlib.resources`), so a page imports
  `/v1/api/sdk/space-api.js` with no build step.
- A project's `modules.static.routes` / `gateway.routes` (`[{prefix, path}]`, absolute paths from
  gateway/config.py) are served for GET/HEAD by the route table's last entry, a catch-all: it never
  serves `/v1/...`, so a `/` prefix can serve a whole app without shadowing the API, and it reads the
  *current* config on every request (config edits apply without a restart). The longest matching
  prefix wins; a directory serves its `index.html`; a file that is not there is the API's JSON 404.
- Files are found and sent by `gateway.files` (paths must stay inside the route's folder).
"""

from __future__ import annotations

from pathlib import Path

from common.errors import NotFound
from gateway.core import Core
from gateway.files import file_response, package_folder, safe_file
from gateway.http import Request


def _match(prefix: str, path: str) -> str | None:
    """The rest of `path` under `prefix` (segment-wise: `/app` matches `/app` and `/app/x`, not `/apple`)."""
    prefix = "/" + prefix.strip("/")
    if prefix == "/":
        return path
    if path == prefix or path.startswith(prefix + "/"):
        return path[len(prefix):] or "/"
    return None


class Static:
    """The browser client's files and every project's static routes."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.sdk_dir = package_folder("sdk", "js")

    def find(self, path: str) -> Path | None:
        routes = [r for p in self.core.config.projects.values() for r in p.static]
        routes.sort(key=lambda r: len("/" + r.prefix.strip("/")), reverse=True)
        for route in routes:
            rest = _match(route.prefix, path)
            if rest is None:
                continue
            found = safe_file(Path(route.path), rest)
            if found is not None:
                return found
        return None

    async def sdk_file(self, request: Request) -> None:
        name = request.params["name"]
        found = safe_file(self.sdk_dir, name) if name.endswith(".js") else None
        if found is None:
            raise NotFound("not found")
        await file_response(found)(request.scope, request.receive, request.send)

    async def project_file(self, request: Request) -> None:
        path = request.path
        found = None if path == "/v1" or path.startswith("/v1/") else self.find(path)
        if found is None:
            raise NotFound("not found")
        await file_response(found)(request.scope, request.receive, request.send)
