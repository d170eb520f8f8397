"""What the console refuses: viewers' mutations (no controls, and 403 when forged), requests
without the CSRF token (403), and untrusted message content as markup (shown as text)."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.dlq_admin.console.conftest import Person, Served
from tests.dlq_admin.helpers import park, queue_depth, request_body

SCRIPT = "<script>alert('body')</script>"
IMG = '"><img src=x onerror=alert(1)>'


async def _one_entry(served: Served) -> str:
    body = await park(served.admin.connection, served.admin.names)
    await served.admin.wait_handled(1)
    [item] = await served.admin.entries(payment_id=body["payment_id"])
    return str(item["id"])


async def test_a_viewer_sees_no_mutating_controls_and_a_forged_post_is_refused(
    bob: Person, served: Served
) -> None:
    entry_id = await _one_entry(served)
    await bob.open(f"/ui/entries/{entry_id}")
    await expect(bob.page.get_by_role("heading", name=f"Entry {entry_id}")).to_be_visible()
    for name in ("Replay", "Discard", "Discard…", "Edit & replay"):
        await expect(bob.page.get_by_role("button", name=name, exact=True)).to_have_count(0)
        await expect(bob.page.get_by_role("link", name=name, exact=True)).to_have_count(0)
    await bob.open("/ui/groups")
    await expect(bob.page.get_by_role("button", name="Replay this group")).to_have_count(0)
    await bob.shot("viewer-groups")

    csrf = await bob.csrf()  # a valid session and CSRF token: only the role is missing
    for path in (f"/ui/entries/{entry_id}/replay", f"/ui/entries/{entry_id}/discard"):
        response = await bob.page.request.post(
            served.url + path, form={"csrf": csrf}, max_redirects=0
        )
        assert response.status == 403, (path, response.status)
    response = await bob.page.request.get(served.url + f"/ui/entries/{entry_id}/discard")
    assert response.status == 403
    assert await queue_depth(served.admin.connection, served.admin.names.requests) == 0
    [item] = await served.admin.entries(status="parked")
    assert item["id"] == entry_id

    audit = await served.admin.get("/audit", actor="bob", outcome="forbidden")
    assert {a["action"] for a in audit["items"]} >= {"console.replay", "console.discard"}


async def test_a_state_changing_request_without_the_csrf_token_is_refused(
    alice: Person, served: Served
) -> None:
    entry_id = await _one_entry(served)
    await alice.open(f"/ui/entries/{entry_id}")
    for form in ({}, {"csrf": "forged"}):
        response = await alice.page.request.post(
            served.url + f"/ui/entries/{entry_id}/discard", form=form, max_redirects=0
        )
        assert response.status == 403
        assert "CSRF" in await response.text()
    response = await alice.page.request.post(served.url + "/ui/logout", max_redirects=0)
    assert response.status == 403
    [item] = await served.admin.entries(status="parked")
    assert item["id"] == entry_id
    # The sign-in form has its own token: a cross-site sign-in without it is refused too.
    response = await alice.page.request.post(
        served.url + "/ui/login", form={"token": "x"}, max_redirects=0
    )
    assert response.status == 403


async def test_markup_in_a_parked_message_is_shown_as_text(alice: Person, served: Served) -> None:
    admin = served.admin
    body: dict[str, Any] = request_body(merchant_id=SCRIPT, note=IMG, description=SCRIPT)
    await park(
        admin.connection,
        admin.names,
        body,
        error=IMG + SCRIPT,
        error_code=IMG,
        extra={"x-evil": SCRIPT, IMG: "header name"},
    )
    await admin.wait_handled(1)
    [item] = await admin.entries()
    for path in (
        "/ui/",
        "/ui/entries",
        f"/ui/entries?merchant={SCRIPT}",
        f"/ui/entries/{item['id']}",
        f"/ui/entries/{item['id']}/edit",
        "/ui/groups",
        f"/ui/payments?payment_id={SCRIPT}",
        f"/ui/audit?actor={IMG}",
    ):
        await alice.open(path)
        assert await alice.page.locator("img").count() == 0, path
        scripts = await alice.page.locator("script").evaluate_all("s => s.map(e => e.src)")
        assert scripts == [served.url + "/ui/static/console.js"], path
    await alice.open(f"/ui/entries/{item['id']}")
    await expect(alice.page.get_by_label("Message body")).to_contain_text(SCRIPT)
    await expect(alice.page.get_by_label("Message headers")).to_contain_text(SCRIPT)
    await expect(alice.page.locator("main")).to_contain_text(IMG)
    await alice.open("/ui/entries")
    await expect(alice.page.locator("table[aria-label='DLQ entries'] tbody")).to_contain_text(
        SCRIPT
    )
    await alice.shot("xss-as-text")
    assert alice.dialogs == []
    assert alice.errors == []
