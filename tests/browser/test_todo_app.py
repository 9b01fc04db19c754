"""The realtime todo app in headless Chromium: two devices of one user, and another user.

Alice signs up on her laptop and signs in on her phone (after a wrong password, which must show an
error). What she adds, completes and deletes on one device appears on the other without a reload;
Bob, signed in elsewhere, sees none of it and Alice none of his. The summary button calls the
Python service. Every step leaves a screenshot in test-artifacts/browser/.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, TodoStack, chromium_path
from tests.support.stack import database_params

pytestmark = pytest.mark.browser

CHROMIUM = chromium_path()
if CHROMIUM is None:
    pytest.skip("Debian chromium is not installed: apt-get install chromium (as root)", allow_module_level=True)
try:
    from playwright.async_api import Browser, BrowserContext, Page, WebSocket, expect
except ImportError:  # pragma: no cover
    pytest.skip("the playwright package is missing: pip install -e '.[test]'", allow_module_level=True)

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "reduced_motion": "reduce"}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
                         "is_mobile": True, "has_touch": True, "reduced_motion": "reduce"}
PASSWORD = "correct horse battery"
DONE = re.compile(r"\bdone\b")


class Device:
    """One browser context (a device), with its console errors collected and numbered screenshots."""

    counter = 0

    def __init__(self, name: str, context: BrowserContext, page: Page) -> None:
        self.name = name
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.prefix = ""
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    @classmethod
    async def open(cls, browser: Browser, name: str, stack: TodoStack, **options: Any) -> Device:
        context = await browser.new_context(**options)
        page = await context.new_page()
        device = cls(name, context, page)
        device.prefix = "" if stack.db == "sqlite" else stack.db
        await page.goto(stack.page_url())
        await page.evaluate("window.__loadedOnce = true")
        return device

    async def shot(self, step: str) -> None:
        Device.counter += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = f"{Device.counter:02d}-{self.name}-{step}.png"
        if self.prefix:
            name = f"{self.prefix}/{name}"
            (ARTIFACTS / self.prefix).mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)

    async def not_reloaded(self) -> None:
        assert await self.page.evaluate("window.__loadedOnce === true"), f"{self.name} reloaded"

    async def sign_up(self, name: str, email: str, password: str) -> None:
        p = self.page
        await p.click("#tab-signup")
        await p.fill("#name", name)
        await p.fill("#email", email)
        await p.fill("#password", password)
        await p.click("#auth-submit")

    async def sign_in(self, email: str, password: str) -> None:
        p = self.page
        await p.click("#tab-signin")
        await p.fill("#email", email)
        await p.fill("#password", password)
        await p.click("#auth-submit")

    async def add(self, text: str) -> None:
        await self.page.fill("#new-todo", text)
        await self.page.click("#add")

    def item(self, text: str) -> Any:
        return self.page.locator(".item", has_text=text)


@pytest.mark.parametrize("todo_stack", database_params(), indirect=True)
async def test_two_devices_one_user_and_another_user(browser: Browser, todo_stack: TodoStack) -> None:
    run = uuid.uuid4().hex[:6]  # databases other than SQLite outlive the test: fresh users every run
    alice = f"alice-{run}@example.com"
    laptop = await Device.open(browser, "alice-laptop", todo_stack, **DESKTOP)
    phone = await Device.open(browser, "alice-phone", todo_stack, **PHONE)
    bob = await Device.open(browser, "bob", todo_stack, **DESKTOP)

    # Signed out: the sign-in card.
    await expect(laptop.page.locator("#auth-view")).to_be_visible()
    await laptop.shot("signed-out")
    await phone.shot("signed-out")

    # Sign up on the laptop: an empty list with its empty state.
    await laptop.sign_up("Alice", alice, PASSWORD)
    await expect(laptop.page.locator("#app-view")).to_be_visible()
    await expect(laptop.page.locator("#empty")).to_be_visible()
    await expect(laptop.page.locator("#who")).to_contain_text(alice)
    await expect(laptop.page.locator("#status")).to_have_class("status live")
    await laptop.shot("signed-up-empty")

    # Signing up again with the same email says so.
    await bob.sign_up("Mallory", alice, "whatever-password")
    await expect(bob.page.locator("#auth-error")).to_contain_text("already exists")

    # A wrong password on the phone: a clear error, still signed out.
    await phone.sign_in(alice, "not the password")
    await expect(phone.page.locator("#auth-error")).to_be_visible()
    await expect(phone.page.locator("#auth-error")).to_contain_text("Wrong email or password")
    await expect(phone.page.locator("#app-view")).to_be_hidden()
    await phone.shot("wrong-password")
    # An unknown email gets the same answer: the page cannot tell anyone which emails have accounts.
    await phone.page.locator("#auth-error").evaluate("el => { el.textContent = ''; }")
    await phone.sign_in(f"nobody-{run}@example.com", PASSWORD)
    await expect(phone.page.locator("#auth-error")).to_contain_text("Wrong email or password")

    # The right password.
    await phone.sign_in(alice, PASSWORD)
    await expect(phone.page.locator("#empty")).to_be_visible()
    await phone.shot("signed-in-empty")

    # Add on the laptop → both appear on the phone without a reload.
    await laptop.add("Buy oat milk")
    await laptop.add("Write the quarterly report")
    await expect(laptop.page.locator(".item")).to_have_count(2)
    await expect(phone.page.locator(".item")).to_have_count(2)
    await expect(phone.item("Buy oat milk")).to_be_visible()
    await expect(phone.item("Write the quarterly report")).to_be_visible()
    await expect(phone.page.locator("#empty")).to_be_hidden()
    await phone.not_reloaded()
    await laptop.shot("added-two")
    await phone.shot("sees-two")

    # Complete on the phone → done on the laptop.
    await phone.item("Buy oat milk").locator("input[type=checkbox]").click()
    await expect(laptop.item("Buy oat milk")).to_have_class(DONE)
    await expect(laptop.item("Buy oat milk").locator("input[type=checkbox]")).to_be_checked()
    await expect(laptop.page.locator("#counts")).to_have_text("1 open · 1 done")
    await laptop.not_reloaded()
    await phone.shot("completed-one")
    await laptop.shot("sees-completed")

    # Add on the phone, delete on the laptop.
    await phone.add("Call the plumber")
    await expect(laptop.item("Call the plumber")).to_be_visible()
    await laptop.item("Write the quarterly report").locator(".delete").click()
    await expect(phone.item("Write the quarterly report")).to_have_count(0)
    await expect(phone.page.locator(".item")).to_have_count(2)
    await phone.not_reloaded()
    await laptop.shot("deleted-one")
    await phone.shot("sees-deleted")

    # Bob: his own empty list; Alice's todos never reach him, his never reach her.
    await bob.sign_up("Bob", f"bob-{run}@example.com", "bobs password 1")
    await expect(bob.page.locator("#empty")).to_be_visible()
    await bob.add("Bob's secret plan")
    await expect(bob.page.locator(".item")).to_have_count(1)
    await bob.shot("own-list")
    await laptop.add("Alice again")
    await expect(phone.item("Alice again")).to_be_visible()
    await expect(bob.page.locator(".item")).to_have_count(1)
    await expect(bob.item("Alice")).to_have_count(0)
    await expect(laptop.item("Bob's secret plan")).to_have_count(0)
    await expect(phone.item("Bob's secret plan")).to_have_count(0)

    # The summary button calls the Python service.
    await laptop.page.click("#summary-btn")
    summary = laptop.page.locator("#summary")
    await expect(summary).to_be_visible()
    await expect(summary).to_contain_text("2 to go, 1 done (33%)")
    await expect(summary).to_contain_text("3 total · 1 done · 2 open")
    await laptop.shot("summary")
    await phone.page.click("#summary-btn")
    await expect(phone.page.locator("#summary")).to_contain_text("3 total")
    await phone.shot("summary")
    await bob.page.click("#summary-btn")
    await expect(bob.page.locator("#summary")).to_contain_text("1 total · 0 done · 1 open")

    # A reload keeps the session (and the list comes back from the server).
    await phone.page.reload()
    await expect(phone.page.locator(".item")).to_have_count(3)

    # Sign out: back to the sign-in card; the other device is unaffected.
    await laptop.page.click("#signout")
    await expect(laptop.page.locator("#auth-view")).to_be_visible()
    await phone.add("Still live after the laptop left")
    await expect(phone.item("Still live after the laptop left")).to_be_visible()
    await laptop.shot("signed-out-again")

    for device in (laptop, phone, bob):
        assert device.errors == [], f"{device.name}: {device.errors}"
        await device.context.close()


async def test_devices_catch_up_after_their_sockets_drop(browser: Browser, todo_stack: TodoStack) -> None:
    """Every socket is closed by the server (4008, as for a slow consumer); writes made while the
    pages reconnect reach them through the resume, and nothing is lost or duplicated."""
    laptop = await Device.open(browser, "resume-laptop", todo_stack, **DESKTOP)
    phone = await Device.open(browser, "resume-phone", todo_stack, **PHONE)
    acks: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    def on_socket(ws: WebSocket) -> None:
        def received(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "realtime-subscribe":
                acks.append(frame["data"])

        def sending(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("type") == "realtime-subscribe":
                sent.append(frame["data"])

        ws.on("framereceived", received)
        ws.on("framesent", sending)

    phone.page.on("websocket", on_socket)
    await laptop.sign_up("Carol", "carol@example.com", PASSWORD)
    await expect(laptop.page.locator("#status")).to_have_class("status live")
    await phone.sign_in("carol@example.com", PASSWORD)
    await expect(phone.page.locator("#status")).to_have_class("status live")
    for text in ("one", "two", "three"):
        await laptop.add(text)
    await expect(phone.page.locator(".item")).to_have_count(3)

    for client in list(todo_stack.gw.clients.values()):
        with contextlib.suppress(Exception):
            await client.ws.close(4008, "slow consumer (test)")
    await expect(phone.page.locator("#status")).to_have_class("status down")
    await phone.shot("reconnecting")
    # While the sockets are down (HTTP still works): add, complete, delete.
    await laptop.add("four")
    await laptop.item("one").locator("input[type=checkbox]").click()
    await laptop.item("two").locator(".delete").click()

    await expect(phone.page.locator("#status")).to_have_class("status live")
    await expect(phone.page.locator(".item")).to_have_count(3)
    await expect(phone.item("four")).to_be_visible()
    await expect(phone.item("one")).to_have_class(DONE)
    await expect(phone.item("two")).to_have_count(0)
    await expect(laptop.page.locator(".item")).to_have_count(3)
    # Live again afterwards.
    await phone.add("five")
    await expect(laptop.item("five")).to_be_visible()
    await phone.not_reloaded()
    await laptop.not_reloaded()
    await phone.shot("caught-up")
    # The phone subscribed once, then resumed from the last time it had seen (no new snapshot).
    assert len(sent) == 2 and "resumeFrom" not in sent[0]["options"], sent
    assert sent[1]["options"]["resumeFrom"] > 0 and sent[1]["id"] == sent[0]["id"]
    assert acks[1].get("resumed") is True and acks[1]["docs"] == [], acks[1]
    for device in (laptop, phone):
        assert device.errors == [], f"{device.name}: {device.errors}"
        await device.context.close()
