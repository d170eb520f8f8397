"""Signing in and out of the console, the session cookie, and its expiry."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

from playwright.async_api import expect

from schemas.tables import utcnow
from tests.dlq_admin.conftest import OPERATOR_TOKEN
from tests.dlq_admin.console.conftest import Person, Served


async def test_sign_in_sets_a_strict_http_only_session_cookie_without_the_token(
    people: Any, served: Served
) -> None:
    alice: Person = await people("alice")
    await alice.open("/ui/entries")
    await expect(alice.page.get_by_role("heading", name="Sign in")).to_be_visible()
    await alice.shot("sign-in")
    await alice.page.get_by_label("Admin token").fill("not-a-token")
    await alice.page.get_by_role("button", name="Sign in").click()
    await expect(alice.page.get_by_role("alert")).to_have_text("That token is not valid.")

    await alice.page.get_by_label("Admin token").fill(OPERATOR_TOKEN)
    await alice.page.get_by_role("button", name="Sign in").click()
    await alice.page.wait_for_url(served.url + "/ui/entries")  # back where she was going
    await expect(alice.page.get_by_role("heading", name="Entries")).to_be_visible()

    [cookie] = [c for c in await alice.page.context.cookies() if c["name"] == "payproc_console"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP here; PAYPROC_ADMIN_CONSOLE_HTTPS sets it
    assert cookie["expires"] > time.time()
    assert OPERATOR_TOKEN not in cookie["value"]
    assert OPERATOR_TOKEN.split("-", 1)[1] not in cookie["value"]

    audit = await served.admin.get("/audit", action="console.sign_in")
    assert [(a["actor"], a["outcome"]) for a in audit["items"]] == [
        ("alice", "ok"),
        (None, "unauthenticated"),
    ]


async def test_every_page_refuses_framing_and_inline_script(alice: Person) -> None:
    response = await alice.open("/ui/")
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY"


async def test_sign_out_ends_the_session(alice: Person, served: Served) -> None:
    await alice.page.get_by_role("button", name="Sign out").click()
    await expect(alice.page.get_by_role("status")).to_have_text("You are signed out.")
    await alice.open("/ui/entries")
    await expect(alice.page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_an_expired_session_asks_to_sign_in_again(alice: Person, served: Served) -> None:
    await alice.open("/ui/audit")
    await expect(alice.page.get_by_role("heading", name="Audit log")).to_be_visible()
    sessions = served.console.sessions
    lifetime = timedelta(seconds=sessions.ttl + 1)
    sessions.clock = lambda: utcnow() + lifetime  # the sign-in's lifetime passes
    await alice.open("/ui/audit")
    await expect(alice.page.get_by_role("status")).to_have_text(
        "Your session expired. Sign in again."
    )
    await alice.page.get_by_label("Admin token").fill(OPERATOR_TOKEN)
    await alice.page.get_by_role("button", name="Sign in").click()
    await alice.page.wait_for_url(served.url + "/ui/audit")


async def test_the_session_cookie_is_secure_when_the_console_is_served_over_https(
    served: Served,
) -> None:
    served.console.config = replace(served.console.config, secure=True)
    client = served.admin.client
    form = await client.get("/ui/login")
    assert "secure" in form.headers["set-cookie"].lower()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    # A client keeps a Secure cookie for https only: hand the sign-in form's cookie back.
    login_cookie = form.headers["set-cookie"].split(";", 1)[0]
    answer = await client.post(
        "/ui/login",
        data={"token": OPERATOR_TOKEN, "csrf": csrf.group(1), "next": "/ui/"},
        headers={"Cookie": login_cookie},
    )
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("payproc_console=")
    assert "; Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
