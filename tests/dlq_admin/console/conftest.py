"""Browser fixtures: the admin runtime served by uvicorn on a free port (in this event loop)
and a headless Debian Chromium driven by Playwright, as an operator would use the console.

Playwright's own browser download is not used: ``chromium`` from the system (``apt-get
install chromium``; ``scripts/ensure-chromium.sh``) is launched through ``executable_path``.
Without it the browser tests are skipped on a laptop and fail under ``CI=true``.
Each test's screenshots go to ``PAYPROC_SCREENSHOTS`` (default ``build/console-screenshots``,
git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Dialog, Page, async_playwright

from dlq_admin.console import Console
from dlq_admin.runtime import RunningServer, start_server
from tests.dlq_admin.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, Admin, StartAdmin
from tests.support.broker import in_ci

SHOTS = Path(os.environ.get("PAYPROC_SCREENSHOTS", "build/console-screenshots"))


def chromium_path() -> str:
    """``PAYPROC_CHROMIUM`` if set, else ``chromium`` on the PATH or ``/usr/bin/chromium``."""
    wanted = os.environ.get("PAYPROC_CHROMIUM")
    if wanted is not None:
        found = wanted if Path(wanted).is_file() else None
    else:
        found = shutil.which("chromium") or (
            "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
        )
    if found is None:
        message = "chromium is not installed (run scripts/ensure-chromium.sh as root)"
        if in_ci():
            pytest.fail(f"{message} (CI=true: never skipped)", pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Served:
    admin: Admin
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def console(self) -> Console:
        console = self.admin.runtime.console
        assert console is not None
        return console


@pytest.fixture
async def served(start_admin: StartAdmin) -> AsyncIterator[Served]:
    """The admin (ingesting from the real broker) with its console on a real HTTP port;
    counts and job progress refresh every 300 ms so tests wait less."""
    admin = await start_admin()
    assert admin.runtime.app is not None
    assert admin.runtime.console is not None
    console = admin.runtime.console
    console.config = replace(console.config, refresh_ms=300)
    server = await start_server(admin.runtime.app)
    try:
        yield Served(admin, server)
    finally:
        await server.stop()


@dataclass
class Person:
    """One browser context (one person's cookies) with a page; dialogs and page errors are
    recorded, so a test can assert that no script ever ran."""

    page: Page
    base: str
    name: str
    dialogs: list[str]
    errors: list[str]

    async def open(self, path: str) -> Any:
        return await self.page.goto(self.base + path)

    async def sign_in(self, token: str) -> None:
        await self.open("/ui/")
        await self.page.get_by_label("Admin token").fill(token)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(self.base + "/ui/")

    async def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    async def csrf(self) -> str:
        value = await self.page.locator("form[action='/ui/logout'] input[name=csrf]").get_attribute(
            "value"
        )
        assert value
        return value


@pytest.fixture
async def people(browser: Browser, served: Served) -> AsyncIterator[Any]:
    contexts = []

    async def person(name: str = "alice") -> Person:
        context = await browser.new_context(viewport={"width": 1440, "height": 900})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        dialogs: list[str] = []
        errors: list[str] = []

        async def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            # A 404 or 403 page is logged as a failed resource; script errors and CSP
            # refusals ("Refused to ...") are what must never appear.
            if message.type == "error" and not message.text.startswith("Failed to load"):
                errors.append(message.text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return Person(page, served.url, name, dialogs, errors)

    yield person
    for context in contexts:
        await context.close()


@pytest.fixture
async def alice(people: Any) -> Person:
    """An operator, signed in."""
    person: Person = await people("alice")
    await person.sign_in(OPERATOR_TOKEN)
    return person


@pytest.fixture
async def bob(people: Any) -> Person:
    """A viewer, signed in."""
    person: Person = await people("bob")
    await person.sign_in(VIEWER_TOKEN)
    return person
