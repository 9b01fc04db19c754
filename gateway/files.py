"""Serving files safely: package data folders, content types, and paths that cannot leave their folder.

Used by the static routes, the browser client's route and Mission Control. Paths are resolved and
must stay inside the route's folder (no `..`, no symlink escapes, no hidden files, no NUL or backslash).
"""

from __future__ import annotations

import mimetypes
import os
from importlib import resources
from pathlib import Path

from starlette.responses import FileResponse, Response


def package_folder(package: str, *parts: str) -> Path:
    """A folder shipped as package data (a checkout and an installed wheel alike)."""
    return Path(str(resources.files(package).joinpath(*parts)))



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
