"""The todo example in-process (db worker + gateway + the `todo` service on the test NATS), and Chromium.

Browser tests need Debian's chromium (`apt-get install chromium`) and the `playwright` Python
package; they never download a browser (`playwright install` is not used). Screenshots go to
`test-artifacts/browser/`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import Gateway
from gateway.config import parse
from sdk import Mesh
from tests.support.servers import gateway
from tests.support.stack import conn_for
from worker import DbWorker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "todo"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    for path in CHROMIUM_PATHS:
        if Path(path).exists():
            return path
    return shutil.which("chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser); skips when absent."""
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("Debian chromium is not installed: apt-get install chromium (as root)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is missing: pip install -e '.[test]'")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@dataclass
class TodoStack:
    url: str
    project: str
    gw: Gateway
    db: str = "sqlite"

    def page_url(self) -> str:
        return f"{self.url}/?project={self.project}"


def example_config(tmp: Path, project: str, db_type: str = "sqlite", conn: str | None = None) -> dict[str, Any]:
    """The example's config.yaml, as is, but with its own project id and database: the one-line switch."""
    raw = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    proj = raw["projects"][0]
    proj["id"] = project
    proj["modules"]["crud"]["db"]["type"] = db_type
    proj["modules"]["crud"]["db"]["conn"] = conn or str(tmp / "todo.db")
    for route in proj["modules"]["static"]["routes"]:
        route["path"] = str(EXAMPLE / route["path"])
    return dict(raw)


@pytest.fixture
async def todo_stack(request: pytest.FixtureRequest, nats_url: str, tmp_path: Path) -> AsyncIterator[TodoStack]:
    """The example on SQLite, or on the database given by indirect parametrisation (see stack.py)."""
    from examples.todo import service

    db = getattr(request, "param", "sqlite")
    project = "todo-" + uuid.uuid4().hex[:8]
    conn = await conn_for(db, tmp_path)
    cfg = parse(example_config(tmp_path, project, db, conn), env={}, base=tmp_path)
    worker = DbWorker(nats_url, databases=cfg.databases())
    await worker.start()
    mesh = Mesh("todo", project=project, nats_url=nats_url)
    mesh.function(service.summary)
    try:
        async with mesh, gateway(cfg, nats_url) as gw:
            yield TodoStack(gw.url, project, gw.gw, db)
    finally:
        await worker.stop()
