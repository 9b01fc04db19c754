"""Mission Control (gateway/mission_control/) in headless Chromium, against a real gateway and NATS.

The admin logs in (after a wrong password), reads the overview (secrets masked), edits a function
rule in the JSON editor (applied at once and written back to the YAML file), is refused an invalid
config with the server's own error, watches a running `sdk.Mesh` service in the Services panel,
deletes a project, and is sent back to the login screen when the token stops being valid. With
`--dev` no login is needed and a banner says so. Plain HTTP checks of the assets come first (they
need no browser). Screenshots go to test-artifacts/browser/mission-control/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.config import load
from sdk import Mesh
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_static_http import raw_get
from tests.support.servers import SECRET, RunningGateway, gateway

with contextlib.suppress(ImportError):  # without playwright the `browser` fixture skips these tests
    from playwright.async_api import Browser, Page, expect

SHOTS = ARTIFACTS / "mission-control"
ADMIN_USER = "root"
ADMIN_PASS = "hunter2-but-longer"
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 860}, "reduced_motion": "reduce"}


def config_file(tmp_path: Path, project: str, other: str) -> Path:
    """Two projects; the first has databases, collections (one not realtime) and a `calc.add` rule that denies."""
    raw: dict[str, Any] = {
        "projects": [
            {
                "id": project, "name": "Shop", "secret": SECRET,
                "modules": {
                    "crud": {
                        "main": {"type": "sqlite", "conn": str(tmp_path / "shop.db"), "collections": {
                            "orders": {"isRealtimeEnabled": True, "rules": {
                                "create": {"rule": "authenticated"}, "read": {"rule": "allow"}}},
                            "audit": {"isRealtimeEnabled": False, "rules": {"read": {"rule": "deny"}}},
                        }},
                        "analytics": {"type": "postgres", "conn": "$SHOP_PG_URL", "enabled": False},
                    },
                    "functions": {"services": {"calc": {"functions": {"add": {"rule": {"rule": "deny"}}}}}},
                    "auth": {"email": {"enabled": True}},
                },
            },
            {"id": other, "name": "Trial", "secret": SECRET, "modules": {"functions": {"enabled": True}}},
        ],
        "admin": {"users": [{"user": ADMIN_USER, "pass": ADMIN_PASS}],
                  "secret": "admin-secret-0123456789-0123456789"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Stack:
    gw: RunningGateway
    project: str
    other: str
    path: Path

    @property
    def url(self) -> str:
        return f"{self.gw.url}/mission-control"


@pytest.fixture
def project() -> str:
    return "shop-" + uuid.uuid4().hex[:8]


@pytest.fixture
async def stack(request: pytest.FixtureRequest, nats_url: str, tmp_path: Path, project: str) -> AsyncIterator[Stack]:
    dev = bool(getattr(request, "param", False))
    other = "trial-" + uuid.uuid4().hex[:6]
    path = config_file(tmp_path, project, other)
    async with gateway(load(path, env={"SHOP_PG_URL": "postgresql://u:pw@db/shop"}), nats_url,
                       dev=dev) as gw:
        yield Stack(gw, project, other, path)


def calc_service(project: str, nats_url: str) -> Mesh:
    svc = Mesh("calc", project=project, nats_url=nats_url)

    @svc.function
    async def add(params: dict[str, Any], auth: Any) -> Any:
        return params["a"] + params["b"]

    @svc.function
    async def mul(params: dict[str, Any], auth: Any) -> Any:
        return params["a"] * params["b"]

    return svc


# ---------------------------------------------------------------- plain HTTP (no browser)


async def test_assets_are_served_with_their_types_and_nothing_else(stack: Stack, tmp_path: Path) -> None:
    port = stack.gw.port
    for path in ("/mission-control", "/mission-control/", "/mission-control/index.html"):
        status, headers, body = await raw_get(port, path)
        assert status == 200, path
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert b'<script type="module" src="/mission-control/app.js">' in body
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-cache"
    status, headers, body = await raw_get(port, "/mission-control/app.js")
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert b"/v1/api/config/login" in body and b"innerHTML =" not in body
    status, headers, _ = await raw_get(port, "/mission-control/style.css")
    assert status == 200 and headers["content-type"] == "text/css; charset=utf-8"
    status, headers, _ = await raw_get(port, "/mission-control/app.js", "HEAD")
    assert status == 200 and int(headers["content-length"]) > 1000
    for bad in ("/mission-control/nope.js", "/mission-control/../admin.py", "/mission-control/%2e%2e/admin.py",
                "/mission-control/..%2fadmin.py", "/mission-control/%2e%2e%2f%2e%2e%2fpyproject.toml",
                "/mission-control/.hidden", "/mission-control/index.html%00.js", "/mission-controlx"):
        status, _, body = await raw_get(port, bad)
        assert status == 404, bad
        assert b"import" not in body and b"[project]" not in body, bad
    async with httpx.AsyncClient(base_url=stack.gw.url) as http:
        assert (await http.post("/mission-control/index.html")).status_code == 405
        # the page is public; the data behind it is not
        r = await http.get("/v1/api/config/projects")
        assert r.status_code == 401 and "admin token" in r.json()["error"]


async def test_a_project_static_route_cannot_shadow_mission_control(nats_url: str, tmp_path: Path) -> None:
    public = tmp_path / "public"
    (public / "mission-control").mkdir(parents=True)
    (public / "mission-control" / "index.html").write_text("<h1>phishing</h1>")
    (public / "mission-control" / "extra.txt").write_text("not the admin ui")
    (public / "index.html").write_text("<h1>site</h1>")
    raw = {"projects": [{"id": "site", "secret": SECRET,
                         "modules": {"static": {"routes": [{"prefix": "/", "path": str(public)}]}}}]}
    async with gateway(raw, nats_url) as gw:
        assert (await raw_get(gw.port, "/"))[2] == b"<h1>site</h1>"
        status, _, body = await raw_get(gw.port, "/mission-control/")
        assert status == 200 and b"phishing" not in body and b"Mission Control" in body
        assert (await raw_get(gw.port, "/mission-control/extra.txt"))[0] == 404


# ---------------------------------------------------------------- the browser


class Admin:
    """One browser tab on Mission Control, with page errors collected and numbered screenshots."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.step = 0
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def shot(self, what: str) -> None:
        self.step += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.step:02d}-{what}.png"), full_page=True)

    async def log_in(self, user: str, password: str) -> None:
        await self.page.fill("#user", user)
        await self.page.fill("#pass", password)
        await self.page.click("#login-submit")

    async def editor_config(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.page.input_value("#editor"))
        return value

    async def set_editor(self, config: dict[str, Any]) -> None:
        await self.page.fill("#editor", json.dumps(config, indent=2))


def add_rule(config: dict[str, Any]) -> Any:
    return config["modules"]["functions"]["services"]["calc"]["functions"]["add"]["rule"]


def saved_projects(path: Path) -> dict[str, dict[str, Any]]:
    """The projects in the config file, by id (an edited project moves to the end of the list)."""
    return {p["id"]: p for p in yaml.safe_load(path.read_text())["projects"]}


@pytest.mark.browser
async def test_admin_logs_in_edits_and_watches_services(browser: Browser, stack: Stack, nats_url: str) -> None:
    context = await browser.new_context(**DESKTOP)
    admin = Admin(await context.new_page(), "prod")
    p = admin.page
    http = httpx.AsyncClient(base_url=stack.gw.url, timeout=10)
    calc = calc_service(stack.project, nats_url)
    call = f"/v1/api/{stack.project}/functions/calc/add"
    try:
        await calc.start()
        await p.goto(stack.url)
        await expect(p.locator("#login-view")).to_be_visible()
        await expect(p.locator("#dev-banner")).to_be_hidden()
        await expect(p.locator("#app-view")).to_be_hidden()
        await admin.shot("login")

        # A wrong password: a clear error, still on the login screen, nothing stored.
        await admin.log_in(ADMIN_USER, "not-the-password")
        await expect(p.locator("#login-error")).to_have_text("Wrong user or password.")
        await expect(p.locator("#app-view")).to_be_hidden()
        assert await p.evaluate("sessionStorage.length") == 0
        await admin.shot("wrong-password")

        # The right password: both projects, the first one open on its overview.
        await admin.log_in(ADMIN_USER, ADMIN_PASS)
        await expect(p.locator("#app-view")).to_be_visible()
        await expect(p.locator("#login-error")).to_be_hidden()
        await expect(p.locator(".project-item")).to_have_count(2)
        await expect(p.locator("#project-title")).to_have_text("Shop")
        token = await p.evaluate("sessionStorage.getItem('missionControl.token')")
        assert isinstance(token, str) and token.count(".") == 2
        overview = p.locator("#panel-overview")
        await expect(overview).to_be_visible()
        await expect(overview.locator('tr[data-key="db:main"]')).to_contain_text("sqlite")
        await expect(overview.locator('tr[data-key="db:analytics"]')).to_contain_text("postgres")
        await expect(overview.locator('tr[data-key="db:analytics"]')).to_contain_text("disabled")
        await expect(overview.locator('tr[data-key="collection:main.orders"]')).to_contain_text("realtime on")
        await expect(overview.locator('tr[data-key="collection:main.audit"]')).to_contain_text("realtime off")
        await expect(overview.locator('tr[data-key="function:calc.add"]')).to_contain_text("deny")
        # secrets and connection strings are masked (an env reference is only named)
        text = await overview.inner_text()
        assert SECRET not in text and "shop.db" not in text and "pw@db" not in text
        assert "$SHOP_PG_URL (from env)" in text
        await admin.shot("overview")

        # Before the edit the rule denies.
        assert (await http.post(call, json={"params": {"a": 2, "b": 3}})).status_code == 401

        # Edit the rule in the JSON editor and save: applied at once and written back to the file.
        await p.click("#tab-editor")
        config = await admin.editor_config()
        assert config["id"] == stack.project and config["secret"] == SECRET  # the editor shows the raw config
        add_rule(config)["rule"] = "allow"
        await admin.set_editor(config)
        await expect(p.locator("#dirty")).to_be_visible()
        await admin.shot("edited")
        await p.click("#save")
        await expect(p.locator("#save-ok")).to_have_text("Saved and applied")
        await expect(p.locator("#save-error")).to_be_hidden()
        await expect(p.locator("#dirty")).to_be_hidden()
        await admin.shot("saved")
        r = await http.post(call, json={"params": {"a": 2, "b": 3}})
        assert (r.status_code, r.json()) == (200, {"result": 5})
        assert add_rule(saved_projects(stack.path)[stack.project]) == {"rule": "allow"}
        await p.click("#tab-overview")
        await expect(overview.locator('tr[data-key="function:calc.add"]')).to_contain_text("allow")

        # An invalid config: the server's error, verbatim, and nothing changes (server or file).
        file_before = stack.path.read_text()
        await p.click("#tab-editor")
        config = await admin.editor_config()
        add_rule(config)["rule"] = "sometimes"
        await admin.set_editor(config)
        await p.click("#save")
        error = p.locator("#save-error")
        await expect(error).to_be_visible()
        admin_headers = {"Authorization": f"Bearer {token}"}
        expected = (await http.post("/v1/api/config/projects", headers=admin_headers, json=config)).json()["error"]
        assert "sometimes" in expected
        assert await error.text_content() == expected
        await expect(p.locator("#save-ok")).to_be_hidden()
        await expect(p.locator("#dirty")).to_be_visible()
        await admin.shot("invalid")
        assert stack.path.read_text() == file_before
        listed = (await http.get("/v1/api/config/projects", headers=admin_headers)).json()["projects"]
        current = {x["id"]: x for x in listed}
        assert add_rule(current[stack.project]) == {"rule": "allow"}
        assert (await http.post(call, json={"params": {"a": 2, "b": 3}})).status_code == 200
        # Not even JSON: said so, without a request.
        await p.fill("#editor", '{"id": ')
        await p.click("#save")
        await expect(error).to_contain_text("Not valid JSON")
        await p.click("#revert")
        await expect(p.locator("#dirty")).to_be_hidden()

        # The Services panel: the running calc service, its functions and instances; refresh sees a second one.
        await p.click("#tab-services")
        row = p.locator("#services-body tr[data-service=calc]")
        await expect(row).to_be_visible()
        await expect(row.locator(".chip")).to_have_text(["add", "mul"])
        await expect(row.locator("td.num")).to_have_text("1")
        await admin.shot("services")
        second = calc_service(stack.project, nats_url)
        async with second:
            await p.click("#services-refresh")
            await expect(row.locator("td.num")).to_have_text("2")
            await admin.shot("services-two-instances")
        await p.click("#services-refresh")
        await expect(row.locator("td.num")).to_have_text("1")

        # A reload keeps the session and the place (tab in the URL).
        await p.reload()
        await expect(p.locator("#app-view")).to_be_visible()
        await expect(p.locator("#tab-services")).to_have_attribute("aria-selected", "true")

        # Delete the other project: cancel first, then confirm.
        await p.click(f".project-item[data-project={stack.other}]")
        await expect(p.locator("#project-title")).to_have_text("Trial")
        await p.click("#delete-project")
        dialog = p.locator("#confirm-delete")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text(stack.other)
        await admin.shot("delete-confirm")
        await p.click("#confirm-cancel")
        await expect(dialog).to_be_hidden()
        await expect(p.locator(".project-item")).to_have_count(2)
        await p.click("#delete-project")
        await p.click("#confirm-ok")
        await expect(dialog).to_be_hidden()
        await expect(p.locator(".project-item")).to_have_count(1)
        await expect(p.locator("#project-title")).to_have_text("Shop")
        assert list(saved_projects(stack.path)) == [stack.project]
        assert (await http.get(f"/v1/api/{stack.other}/services")).status_code == 404
        await admin.shot("deleted")

        # The last project cannot be deleted: the server's reason shows in the dialog.
        await p.click("#delete-project")
        await p.click("#confirm-ok")
        await expect(p.locator("#delete-error")).to_contain_text("at least one project")
        await p.click("#confirm-cancel")

        # An invalid (or expired) token: back to the login screen, with a message.
        await p.click("#tab-overview")
        await p.evaluate("sessionStorage.setItem('missionControl.token', 'not.a.token')")
        await p.reload()
        await expect(p.locator("#login-view")).to_be_visible()
        await expect(p.locator("#login-notice")).to_contain_text("expired or is no longer valid")
        assert await p.evaluate("sessionStorage.getItem('missionControl.token')") is None
        await admin.shot("session-expired")
        # ... also when it happens mid-session, on a save.
        await admin.log_in(ADMIN_USER, ADMIN_PASS)
        await expect(p.locator("#app-view")).to_be_visible()
        await p.click("#tab-editor")
        await p.evaluate("sessionStorage.setItem('missionControl.token', 'not.a.token')")
        await p.click("#save")
        await expect(p.locator("#login-view")).to_be_visible()
        await expect(p.locator("#login-notice")).to_contain_text("expired")
        # Log out forgets the token.
        await admin.log_in(ADMIN_USER, ADMIN_PASS)
        await expect(p.locator("#app-view")).to_be_visible()
        await p.click("#logout")
        await expect(p.locator("#login-view")).to_be_visible()
        assert await p.evaluate("sessionStorage.getItem('missionControl.token')") is None

        assert admin.errors == []
    finally:
        await calc.stop()
        await http.aclose()
        await context.close()


@pytest.mark.browser
@pytest.mark.parametrize("stack", [True], indirect=True, ids=["dev"])
async def test_dev_mode_needs_no_login_and_says_so(browser: Browser, stack: Stack) -> None:
    context = await browser.new_context(**DESKTOP)
    admin = Admin(await context.new_page(), "dev")
    p = admin.page
    try:
        await p.goto(stack.url + "/")
        await expect(p.locator("#dev-banner")).to_be_visible()
        await expect(p.locator("#dev-banner")).to_contain_text("dev mode: no admin login")
        await expect(p.locator("#app-view")).to_be_visible()
        await expect(p.locator("#login-view")).to_be_hidden()
        await expect(p.locator("#logout")).to_be_hidden()
        await expect(p.locator(".project-item")).to_have_count(2)
        await expect(p.locator("#panel-overview")).to_contain_text("calc")
        await admin.shot("no-login")
        # Edits work without a token too.
        await p.click("#tab-editor")
        config = await admin.editor_config()
        config["name"] = "Shop (dev)"
        await admin.set_editor(config)
        await p.keyboard.press("Control+s")
        await expect(p.locator("#save-ok")).to_have_text("Saved and applied")
        await expect(p.locator("#project-title")).to_have_text("Shop (dev)")
        assert saved_projects(stack.path)[stack.project]["name"] == "Shop (dev)"
        assert await p.evaluate("sessionStorage.length") == 0
        await admin.shot("saved")
        # A narrow screen stacks the project list above the project.
        await p.set_viewport_size({"width": 390, "height": 844})
        await p.click("#tab-overview")
        await asyncio.sleep(0)
        await admin.shot("phone")
        assert admin.errors == []
    finally:
        await context.close()
