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
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import websockets
import yaml

from gateway.config import load
from sdk import Mesh
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_static_http import raw_get
from tests.gateway.admin_support import ADMIN_PASS as ADMIN_PASS_VIEWS
from tests.gateway.admin_support import ADMIN_SECRET, PASSWORD, AdminStack, admin_stack, sign_up
from tests.gateway.admin_support import ADMIN_USER as ADMIN_USER_VIEWS
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


HTTP_FAILURE = "Failed to load resource: the server responded with a status of"
"""What Chromium itself notes in the console for an HTTP error the page asked for (a wrong password, a refused
rule): not the page's doing, so not a console error of it. Anything else in the console is."""


class Admin:
    """One browser tab on Mission Control, with page errors and console errors collected and numbered
    screenshots."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.step = 0
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning") and not msg.text.startswith(HTTP_FAILURE) else None)

    async def shot(self, what: str) -> None:
        self.step += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{self.name}-{self.step:02d}-{what}.png"), full_page=True)

    async def view_shot(self, view: str) -> None:
        """The whole page as it is: the pictures of docs/mission-control.md are taken from these."""
        (SHOTS / "views").mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / "views" / f"{view}.png"), full_page=True)

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
        await admin.view_shot("login")

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


# ---------------------------------------------------------------- the views of a running project

VIEW_COLLECTIONS: dict[str, Any] = {
    "notes": {"isRealtimeEnabled": True, "rules": {"create": {"rule": "allow"}}},
    "users": {"rules": {"read": {"rule": "authenticated"}}},
}
VIEW_FUNCTIONS: dict[str, Any] = {"services": {"calc": {"functions": {"add": {"rule": {"rule": "authenticated"}}}}}}


@pytest.fixture
async def views(tmp_path: Path, nats_url: str) -> AsyncIterator[AdminStack]:
    """A project with a db worker, email users, a `notes` collection of 30 documents and a function rule."""
    async with admin_stack(tmp_path, nats_url, collections=VIEW_COLLECTIONS, functions=VIEW_FUNCTIONS) as st:
        docs = [{"id": f"n{i:02d}", "n": i, "tag": "even" if i % 2 == 0 else "odd", "owner": f"u{i % 3}",
                 "text": f"note {i}", "big": "x" * 5000} for i in range(30)]
        r = await st.http.post(st.url("data/sqlite/notes/create"), headers=st.admin, json={"doc": docs})
        assert r.status_code == 200, r.text
        yield st


async def logged_in(browser: Browser, st: AdminStack, name: str, viewport: dict[str, int] | None = None) -> Admin:
    context = await browser.new_context(**{**DESKTOP, **({"viewport": viewport} if viewport else {})})
    admin = Admin(await context.new_page(), name)
    await admin.page.goto(f"{st.gw.url}/mission-control")
    await admin.log_in(ADMIN_USER_VIEWS, ADMIN_PASS_VIEWS)
    await expect(admin.page.locator("#app-view")).to_be_visible()
    return admin


def span(first: int, last: int, total: int) -> str:
    """A pager's text: documents `first` to `last` of `total` (an en dash between)."""
    return f"{first}\u2013{last} of {total}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def user_token(uid: str) -> str:
    return jwt.encode({"id": uid, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


async def public_read(st: AdminStack, find: dict[str, Any]) -> Any:
    r = await st.http.post(st.crud("notes", "read"), json={"find": find, "op": "one"}, headers=bearer(user_token("u0")))
    assert r.status_code == 200, r.text
    return r.json()["result"]


@pytest.mark.browser
async def test_browse_filter_edit_insert_delete_and_follow_live(browser: Browser, views: AdminStack) -> None:
    st = views
    # the API reads notes with any valid token once this rule exists
    await st.http.put(st.url("rules/crud/sqlite/notes/read"), headers=st.admin,
                      json={"rule": {"rule": "authenticated"}})
    admin = await logged_in(browser, st, "data")
    p = admin.page
    try:
        await p.click("#tab-data")
        await expect(p.locator("#data-col")).to_have_value("notes")  # the first configured collection
        await p.click("#data-open")
        await expect(p.locator("#data-live")).to_have_text("live")
        await expect(p.locator("#data-range")).to_have_text(span(1, 25, 30))
        await expect(p.locator("#data-table tbody tr")).to_have_count(25)
        cell = p.locator('tr.doc[data-id="n00"] td').last
        assert len(await cell.inner_text()) <= 80  # a big field is previewed, not shown whole
        await admin.view_shot("data")

        # a where from the builder, a sort, pages
        await p.click("#data-add-condition")
        await p.locator(".condition .cond-field").fill("tag")
        await p.locator(".condition .cond-value").fill("even")
        await p.fill("#data-sort", "n")
        await p.select_option("#data-sort-dir", "-1")
        await p.select_option("#data-size", "10")
        await p.click("#data-open")
        await expect(p.locator("#data-range")).to_have_text(span(1, 10, 15))
        await expect(p.locator("#data-table tbody tr").first).to_have_attribute("data-id", "n28")
        await p.click("#data-next")
        await expect(p.locator("#data-range")).to_have_text(span(11, 15, 15))
        await expect(p.locator("#data-table tbody tr").first).to_have_attribute("data-id", "n08")
        # the same where as raw JSON
        await p.click("#data-where-mode")
        assert json.loads(await p.input_value("#data-where")) == {"tag": {"$eq": "even"}}
        await p.fill("#data-where", '{"n": {"$in": [3, 4, 5]}}')
        await p.click("#data-open")
        await expect(p.locator("#data-range")).to_have_text(span(1, 3, 3))
        await p.fill("#data-where", '{"n": {"$regex": "x"}}')
        await p.click("#data-open")
        await expect(p.locator("#data-error")).to_contain_text("$regex")  # the server's 400, as sent
        await p.click("#data-where-mode")  # the builder cannot show it: it stays JSON, and says why
        await expect(p.locator("#data-where")).to_be_visible()
        await expect(p.locator("#data-error")).to_contain_text("keep editing it as JSON")
        await p.fill("#data-where", '{"tag": "even"}')
        await p.click("#data-where-mode")
        await expect(p.locator(".condition .cond-field")).to_have_value("tag")
        await p.click("#data-open")
        await p.click("#data-next")
        await expect(p.locator("#data-range")).to_have_text(span(11, 15, 15))

        # open a document with the keyboard, edit it: the API returns the change
        await p.locator('tr.doc[data-id="n08"]').focus()
        await p.keyboard.press("Enter")
        dialog = p.locator("#doc-dialog")
        await expect(dialog).to_be_visible()
        doc = json.loads(await p.input_value("#doc-editor"))
        assert doc["id"] == "n08" and len(doc["big"]) == 5000  # the whole document
        del doc["big"]
        doc["text"] = "edited in Mission Control"
        await p.fill("#doc-editor", json.dumps(doc, indent=2))
        await admin.shot("doc-edit")
        await p.click("#doc-save")
        await expect(dialog).to_be_hidden()
        assert await public_read(st, {"id": "n08"}) == {"id": "n08", "n": 8, "tag": "even", "owner": "u2",
                                                        "text": "edited in Mission Control"}
        await expect(p.locator('tr.doc[data-id="n08"]')).to_contain_text("edited in Mission Control")
        # the id cannot change, and nothing changed is said so
        await p.locator('tr.doc[data-id="n08"]').click()
        await p.fill("#doc-editor", json.dumps({**doc, "id": "other"}))
        await p.click("#doc-save")
        await expect(p.locator("#doc-error")).to_have_text("id cannot change.")
        await p.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()

        # someone else writes through the API: the grid follows
        r = await st.http.post(st.crud("notes", "update"), headers=bearer(user_token("u0")),
                               json={"find": {"id": "n06"}, "update": {"$set": {"text": "written elsewhere"}}})
        assert r.status_code == 401  # no update rule for users...
        r = await st.http.post(st.url("data/sqlite/notes/update"), headers=st.admin,
                               json={"find": {"id": "n06"}, "update": {"$set": {"text": "written elsewhere"}}})
        assert r.status_code == 200  # ... so another admin does it
        await expect(p.locator('tr.doc[data-id="n06"]')).to_contain_text("written elsewhere")
        await expect(p.locator("#data-flash")).to_contain_text("notes changed")
        r = await st.http.post(st.crud("notes", "create"), json={"doc": {"id": "n98", "tag": "even", "n": -1}})
        assert r.status_code == 200
        await expect(p.locator("#data-range")).to_have_text(span(11, 16, 16))
        await expect(p.locator('tr.doc[data-id="n98"]')).to_be_visible()
        await admin.shot("live-update")

        # insert one, then delete one
        await p.click("#data-insert")
        await p.fill("#doc-editor", '{"id": "n99", "tag": "even", "n": -2, "text": "inserted"}')
        await p.click("#doc-save")
        await expect(dialog).to_be_hidden()
        assert (await public_read(st, {"id": "n99"}))["text"] == "inserted"
        await expect(p.locator("#data-range")).to_have_text(span(11, 17, 17))
        await p.locator('tr.doc[data-id="n04"]').click()
        await p.click("#doc-delete")
        await expect(p.locator("#confirm")).to_be_visible()
        await p.click("#confirm-yes")
        await expect(dialog).to_be_hidden()
        await expect(p.locator('tr.doc[data-id="n04"]')).to_have_count(0)
        r = await st.http.post(st.crud("notes", "read"), json={"find": {"id": "n04"}}, headers=bearer(user_token("u0")))
        assert r.json()["result"] == []
        # a bad document is refused with the server's reason, and nothing changes
        await p.click("#data-insert")
        await p.fill("#doc-editor", '{"id": "n08"}')
        await p.click("#doc-save")
        await expect(p.locator("#doc-error")).to_contain_text("already exists")
        await p.keyboard.press("Escape")
        assert admin.errors == []
    finally:
        await p.context.close()


@pytest.mark.browser
async def test_users_without_a_hash_disable_reset_delete(browser: Browser, views: AdminStack) -> None:
    st = views
    signed = {e: await sign_up(st, e, name=e.split("@")[0].title()) for e in
              ("ann@example.com", "bob@example.com", "cy@example.com")}
    signin = f"/v1/api/{st.project}/auth/{st.alias}/email/signin"
    bodies: list[str] = []
    admin = await logged_in(browser, st, "users")
    p = admin.page

    async def keep(response: Any) -> None:
        if "/users/" in response.url and response.request.method == "GET":
            bodies.append(await response.text())

    p.on("response", keep)
    try:
        await p.click("#tab-users")
        rows = p.locator("#users-table tbody tr")
        await expect(rows).to_have_count(3)
        await expect(rows.first).to_contain_text("ann@example.com")
        text = await p.locator("#panel-users").inner_text()
        assert "argon2" not in text and "hash" not in text.lower().replace("hashes never", "")
        assert bodies and all("argon2" not in b and '"pass"' not in b and '"hash"' not in b for b in bodies)
        await admin.view_shot("users")

        await p.fill("#users-search", "bo")
        await expect(rows).to_have_count(1)
        bob = p.locator('#users-table tr[data-email="bob@example.com"]')
        await bob.get_by_role("button", name="Disable").click()
        await expect(bob).to_contain_text("disabled")
        await expect(p.locator("#users-notice")).to_contain_text("bob@example.com is disabled")
        r = await st.http.post(signin, json={"email": "bob@example.com", "pass": PASSWORD})
        assert r.status_code == 403
        token = signed["bob@example.com"]["token"]
        assert (await st.http.post(st.crud("users", "read"), json={}, headers=bearer(token))).status_code == 401
        await admin.shot("disabled")
        await bob.get_by_role("button", name="Enable").click()
        await expect(bob).to_contain_text("active")
        assert (await st.http.post(signin, json={"email": "bob@example.com", "pass": PASSWORD})).status_code == 200
        # a role
        await bob.locator(".role-input").fill("editor")
        await bob.locator(".role-input").press("Enter")
        await expect(p.locator("#users-notice")).to_contain_text("role editor")
        r = await st.http.post(signin, json={"email": "bob@example.com", "pass": PASSWORD})
        assert r.json()["user"]["role"] == "editor"

        await p.fill("#users-search", "")
        await expect(rows).to_have_count(3)
        ann = p.locator('#users-table tr[data-email="ann@example.com"]')
        await ann.get_by_role("button", name="Reset password").click()
        await expect(p.locator("#password-dialog")).to_be_visible()
        await p.fill("#password-new", "a-brand-new-one")
        await p.keyboard.press("Enter")
        await expect(p.locator("#password-dialog")).to_be_hidden()
        await expect(p.locator("#users-notice")).to_contain_text("new password")
        assert (await st.http.post(signin, json={"email": "ann@example.com", "pass": PASSWORD})).status_code == 401
        assert (await st.http.post(signin, json={"email": "ann@example.com", "pass": "a-brand-new-one"})
                ).status_code == 200

        cy = p.locator('#users-table tr[data-email="cy@example.com"]')
        await cy.get_by_role("button", name="Delete").click()
        await p.click("#confirm-yes")
        await expect(rows).to_have_count(2)
        assert (await st.http.post(signin, json={"email": "cy@example.com", "pass": PASSWORD})).status_code == 401
        assert admin.errors == []
    finally:
        await p.context.close()


@pytest.mark.browser
async def test_a_rule_from_the_form_is_obeyed_and_the_playground_explains_a_denial(browser: Browser,
                                                                                   views: AdminStack) -> None:
    st = views
    admin = await logged_in(browser, st, "rules")
    p = admin.page
    read = {"find": {"owner": "u1"}}
    try:
        assert (await st.http.post(st.crud("notes", "read"), json=read, headers=bearer(user_token("u1")))
                ).status_code == 401  # no read rule yet
        # unsaved text in the config editor survives a save from another view, which it is told of
        await p.click("#tab-editor")
        edited = {**await admin.editor_config(), "name": "Renamed but not saved"}
        await admin.set_editor(edited)
        await p.click("#tab-rules")
        await expect(p.locator('tr[data-collection="notes"] [data-op="read"]')).to_contain_text("no rule")
        await p.click('tr[data-collection="notes"] [data-op="read"]')
        form = p.locator("#rule-form")
        await form.locator(".rule-kind").first.select_option("match")
        await form.locator(".match-f1").fill("args.auth.id")
        await form.locator(".match-f2").fill("args.find.owner")
        await expect(p.locator("#rule-valid")).to_be_visible()
        await admin.view_shot("rules")
        await p.click("#rule-save")
        await expect(p.locator("#rule-result")).to_contain_text("Saved and applied")
        await expect(p.locator('tr[data-collection="notes"] [data-op="read"]')).to_contain_text("match")
        saved = st.saved()["modules"]["crud"]["sqlite"]["collections"]["notes"]["rules"]["read"]
        assert saved == {"rule": "match", "type": "string", "eval": "==", "f1": "args.auth.id", "f2": "args.find.owner"}
        await p.click("#tab-editor")
        assert (await admin.editor_config())["name"] == "Renamed but not saved"
        await expect(p.locator("#save-error")).to_contain_text("changed on the server")
        await p.click("#revert")
        assert "read" in (await admin.editor_config())["modules"]["crud"]["sqlite"]["collections"]["notes"]["rules"]
        await p.click("#tab-rules")
        # requests obey it at once
        assert (await st.http.post(st.crud("notes", "read"), json=read, headers=bearer(user_token("u1")))
                ).status_code == 200
        r = await st.http.post(st.crud("notes", "read"), json=read, headers=bearer(user_token("u2")))
        assert r.status_code == 403 and r.json()["error"] == "Auth: The two fields do not match"

        # an unknown rule type: said while typing, refused by the server, nothing saved
        before = st.path.read_text()
        await p.click("#rule-mode-json")
        await p.fill("#rule-json", '{"rule": "sometimes"}')
        await expect(p.locator("#rule-problems")).to_contain_text("unknown rule type 'sometimes'")
        await p.click("#rule-save")
        await expect(p.locator("#rule-result")).to_contain_text("invalid rule")
        assert st.path.read_text() == before
        await admin.shot("invalid-rule")

        # the playground: would u2 be allowed to read u1's notes? No, and why
        await p.fill("#rule-json", json.dumps(saved))
        await p.click("#rule-try")
        await expect(p.locator("#tab-playground")).to_have_attribute("aria-selected", "true")
        await expect(p.locator("#play-draft")).to_be_visible()
        await expect(p.locator("#play-col")).to_have_value("notes")
        await p.check("#play-as-claims")
        await p.fill("#play-claims", '{"id": "u2"}')
        await p.fill("#play-body", json.dumps(read))
        await p.click("#play-go")
        verdict = p.locator("#play-verdict")
        await expect(verdict).to_contain_text("Denied · 403")
        await expect(verdict).to_contain_text("Auth: The two fields do not match")
        await expect(p.locator(".explain li")).to_have_text(["match(args.auth.id == args.find.owner)"])
        await admin.view_shot("playground")
        # a user of the project, picked from the list: their own notes are allowed
        ann = await sign_up(st, "ann@example.com")
        await p.check("#play-as-user")
        await expect(p.locator("#play-user option")).to_have_count(1)
        await p.fill("#play-body", json.dumps({"find": {"owner": ann["user"]["id"]}}))
        await p.keyboard.press("Control+Enter")
        await expect(verdict).to_contain_text("Allowed")
        await expect(verdict).to_contain_text("ann@example.com")
        # a query rule is not evaluated unless asked
        await p.click("#tab-rules")
        await p.click("#rule-mode-json")
        await p.fill("#rule-json", json.dumps({"rule": "query", "db": "sqlite", "col": "notes",
                                               "find": {"owner": "args.auth.id"}}))
        await p.click("#rule-try")
        await p.check("#play-as-claims")
        await p.fill("#play-claims", '{"id": "u1"}')
        await p.click("#play-go")
        await expect(verdict).to_contain_text("Denied")
        await expect(p.locator(".explain .tag.warn")).to_have_text("not evaluated")
        await p.check("#play-run")
        await p.click("#play-go")
        await expect(verdict).to_contain_text("Allowed")
        await expect(p.locator(".io-steps")).to_contain_text("a document matched")
        assert st.saved()["modules"]["crud"]["sqlite"]["collections"]["notes"]["rules"]["read"] == saved  # a draft
        assert admin.errors == []
    finally:
        await p.context.close()


@pytest.mark.browser
async def test_databases_services_and_the_live_view(browser: Browser, views: AdminStack, nats_url: str,
                                                    tmp_path: Path) -> None:
    st = views
    calc = calc_service(st.project, nats_url)
    admin = await logged_in(browser, st, "ops")
    p = admin.page
    try:
        await calc.start()
        await p.click("#tab-databases")
        db = p.locator('.db[data-alias="sqlite"]')
        await expect(db).to_contain_text("connected")
        await expect(db.locator('tr[data-collection="notes"] td.metric')).to_have_text("30")
        await admin.view_shot("databases")
        await p.fill("#db-alias", "extra")
        await p.fill("#db-conn", str(tmp_path / "missing" / "x.db"))
        await p.click("#db-test")
        await expect(p.locator("#db-result")).to_contain_text("Cannot connect")
        await p.click("#db-save")
        await expect(p.locator("#db-result")).to_contain_text("nothing was saved")
        assert "extra" not in st.saved()["modules"]["crud"]
        await p.fill("#db-conn", str(tmp_path / "extra.db"))
        await p.click("#db-save")
        await expect(p.locator("#db-result")).to_contain_text("Saved and applied")
        await expect(p.locator('.db[data-alias="extra"]')).to_be_visible()
        assert st.saved()["modules"]["crud"]["extra"]["conn"] == str(tmp_path / "extra.db")

        # a service started by this test, and a call to it as a chosen caller
        await p.click("#tab-services")
        row = p.locator("#services-body tr[data-service=calc]")
        await expect(row).to_be_visible()
        await expect(row.locator(".chip")).to_have_text(["add", "mul"])
        await p.fill("#try-service", "calc")
        await p.fill("#try-func", "add")
        await p.fill("#try-params", '{"a": 2, "b": 3}')
        await p.click("#try-run")
        await expect(p.locator("#try-result")).to_contain_text("401")  # the rule needs a token
        await p.check("#try-as-claims")
        await p.click("#try-run")
        await expect(p.locator("#try-result")).to_contain_text("200 OK")
        await expect(p.locator("#try-output")).to_have_text("5")
        await p.click("#services-refresh")
        metrics = await st.http.get("/metrics")
        if metrics.status_code == 200:
            # one call reached the service (the rule refused the first before it was made)
            await expect(p.locator('#functions-metrics tr[data-function="calc.add"] td').nth(1)).to_have_text("1")
        else:
            await expect(p.locator("#functions-metrics")).to_contain_text("no /metrics endpoint")
        await admin.view_shot("services")

        # the live view: this gateway's numbers and health
        async with websockets.connect(f"{st.gw.ws_url}/v1/api/{st.project}/socket/json"):
            await p.click("#tab-live")
            await expect(p.locator("#live-status")).to_contain_text("HTTP 200")
            ws = p.locator('[data-stat="websockets"] .stat-value')
            if metrics.status_code == 200 and "sc_websocket_connections" in metrics.text:
                await expect(ws).to_have_text("1")
                await expect(p.locator("#live-routes-table")).to_contain_text("/v1/api/config/login")
            else:
                await expect(p.locator("#live-note")).to_be_visible()
            await p.click("#live-refresh")
            await expect(p.locator('[data-stat="requests"] .stat-value')).not_to_have_text("…")
            await admin.view_shot("live")
        await p.click("#tab-overview")
        await admin.view_shot("overview")
        await p.click("#tab-editor")
        await admin.view_shot("editor")
        assert admin.errors == []
    finally:
        await calc.stop()
        await p.context.close()


@pytest.mark.browser
async def test_keyboard_narrow_screen_storage_and_session_expiry(browser: Browser, views: AdminStack) -> None:
    st = views
    context = await browser.new_context(**{**DESKTOP, "viewport": {"width": 390, "height": 844}})
    admin = Admin(await context.new_page(), "phone")
    p = admin.page
    try:
        await p.goto(f"{st.gw.url}/mission-control")
        # the keyboard alone: the user field has focus, Tab to the password, Enter logs in
        await expect(p.locator("#user")).to_be_focused()
        await p.keyboard.type(ADMIN_USER_VIEWS)
        await p.keyboard.press("Tab")
        await p.keyboard.type(ADMIN_PASS_VIEWS)
        await p.keyboard.press("Enter")
        await expect(p.locator("#app-view")).to_be_visible()
        await p.locator("#tab-overview").focus()
        await p.keyboard.press("ArrowRight")
        await expect(p.locator("#tab-databases")).to_be_focused()
        await expect(p.locator("#panel-databases")).to_be_visible()
        await p.keyboard.press("End")
        await expect(p.locator("#tab-editor")).to_have_attribute("aria-selected", "true")
        await p.keyboard.press("Home")
        await p.keyboard.press("ArrowRight")
        await p.keyboard.press("ArrowRight")
        await expect(p.locator("#tab-data")).to_have_attribute("aria-selected", "true")
        await p.locator("#data-open").focus()
        await p.keyboard.press("Enter")
        await expect(p.locator("#data-range")).to_have_text(span(1, 25, 30))
        # nothing runs off the side of a phone
        width = await p.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        await admin.view_shot("phone-data")
        await p.locator('tr.doc[data-id="n01"]').focus()
        await p.keyboard.press("Enter")
        await expect(p.locator("#doc-dialog")).to_be_visible()
        await p.keyboard.press("Escape")
        await expect(p.locator("#doc-dialog")).to_be_hidden()
        for tab in ("users", "rules", "playground", "live"):
            await p.click(f"#tab-{tab}")
            await expect(p.locator(f"#panel-{tab}")).to_be_visible()
            assert await p.evaluate("document.documentElement.scrollWidth") <= 390, tab
            await admin.shot(tab)

        # no secret in the URL or in local storage: the session is in this tab's sessionStorage only
        assert await p.evaluate("localStorage.length") == 0
        assert await p.evaluate("Object.keys(sessionStorage).sort()") == ["missionControl.token", "missionControl.user"]
        token = await p.evaluate("sessionStorage.getItem('missionControl.token')")
        assert token not in p.url and await p.evaluate("document.cookie") == ""

        # the session ends when its token does, without a click
        now = int(time.time())
        soon = jwt.encode({"id": ADMIN_USER_VIEWS, "role": "admin", "iat": now, "exp": now + 3}, ADMIN_SECRET,
                          algorithm="HS256")
        await p.evaluate(f"sessionStorage.setItem('missionControl.token', {json.dumps(soon)})")
        await p.reload()
        await expect(p.locator("#app-view")).to_be_visible()
        await expect(p.locator("#login-view")).to_be_visible(timeout=8000)
        await expect(p.locator("#login-notice")).to_contain_text("expired")
        assert await p.evaluate("sessionStorage.getItem('missionControl.token')") is None
        assert admin.errors == []
    finally:
        await context.close()
