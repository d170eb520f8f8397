"""An operator works the DLQ from the console: looks at the overview, filters and pages the
entries, opens one, edits and replays it, discards another; viewers only look."""

from __future__ import annotations

import asyncio
from typing import Any

from playwright.async_api import Browser, expect

from tests.dlq_admin.conftest import OPERATOR_TOKEN
from tests.dlq_admin.console.conftest import Person, Served
from tests.dlq_admin.helpers import (
    EXHAUSTED_AFTER_503,
    park,
    park_many,
    queue_depth,
    record_succeeded,
    request_body,
)


async def _entry_id(served: Served, **params: Any) -> str:
    [item] = await served.admin.entries(**params)
    return str(item["id"])


async def test_overview_counts_refresh_without_a_reload(alice: Person, served: Served) -> None:
    admin = served.admin
    await park_many(admin.connection, admin.names, 3)
    await park(admin.connection, admin.names, **EXHAUSTED_AFTER_503)
    await admin.wait_handled(4)
    await alice.open("/ui/")
    parked = alice.page.locator("[data-count=parked]")
    await expect(parked).to_have_text("4")
    await expect(alice.page.locator("[data-count='reason-gateway_rejected']")).to_have_text("3")
    await alice.shot("overview")
    await alice.page.evaluate("window.__sameDocument = true")

    await park_many(admin.connection, admin.names, 2)
    await admin.wait_handled(6)
    await expect(parked).to_have_text("6")
    await expect(alice.page.locator("[data-count='reason-gateway_rejected']")).to_have_text("5")
    assert await alice.page.evaluate("window.__sameDocument === true")  # not reloaded
    assert alice.errors == []


async def test_filter_and_page_the_entries_while_new_ones_arrive(
    alice: Person, served: Served
) -> None:
    admin = served.admin
    await park_many(admin.connection, admin.names, 53)
    await park(
        admin.connection,
        admin.names,
        request_body(merchant_id="m_rare"),
        reason="retries_exhausted",
        error_code="http_503",
        http_status=503,
    )
    await admin.wait_handled(54)

    await alice.open("/ui/entries")
    await alice.page.get_by_label("Reason").select_option("retries_exhausted")
    await alice.page.get_by_role("button", name="Filter").click()
    rows = alice.page.locator("table[aria-label='DLQ entries'] tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("m_rare")

    await alice.open("/ui/entries")
    await alice.page.get_by_label("Merchant").fill("m_rare")
    await alice.page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)

    await alice.open("/ui/entries?reason=gateway_rejected")
    await expect(rows).to_have_count(50)
    await alice.shot("entries")
    last_on_first = await rows.nth(49).locator("td").first.inner_text()
    await park_many(admin.connection, admin.names, 5)  # newer entries arrive meanwhile
    await admin.wait_handled(59)
    await alice.page.get_by_role("link", name="Older »").click()
    await expect(rows).to_have_count(3)  # exactly the 3 older ones: nothing shifted
    first_on_second = await rows.first.locator("td").first.inner_text()
    assert first_on_second <= last_on_first

    await alice.open("/ui/entries?since=yesterday")
    await expect(alice.page.get_by_role("alert")).to_contain_text("since")


async def test_edit_and_replay_shows_a_diff_and_publishes_only_a_valid_edit(
    alice: Person, served: Served
) -> None:
    admin = served.admin
    body = await park(admin.connection, admin.names, request_body(amount=1400))
    await admin.wait_handled(1)
    entry_id = await _entry_id(served, payment_id=body["payment_id"])

    await alice.open("/ui/entries")
    await alice.page.get_by_role("link", name="202").first.click()  # the dead-lettered time
    await expect(alice.page.get_by_role("heading", name=f"Entry {entry_id}")).to_be_visible()
    await expect(alice.page.locator("ol.timeline li")).to_have_count(1)
    await alice.shot("entry")

    await alice.page.get_by_role("link", name="Edit & replay").click()
    editor = alice.page.get_by_label("Body (JSON)")
    text = await editor.input_value()
    await editor.fill(text.replace('"amount": 1400', '"amount": -5'))
    await alice.page.get_by_role("button", name="Check changes").click()
    await expect(alice.page.get_by_role("alert")).to_contain_text("nothing was published")
    await expect(alice.page.get_by_role("alert")).to_contain_text("amount")
    await expect(alice.page.get_by_role("button", name="Replay")).to_have_count(0)
    assert await queue_depth(admin.connection, admin.names.requests) == 0

    text = await editor.input_value()
    await editor.fill(text.replace('"amount": -5', '"amount": 1999'))
    await alice.page.get_by_role("button", name="Check changes").click()
    diff = alice.page.get_by_label("Diff of the edited body")
    await expect(diff.locator(".del")).to_contain_text('"amount": 1400')
    await expect(diff.locator(".add")).to_contain_text('"amount": 1999')
    await alice.shot("edit")
    await alice.page.get_by_role("button", name="Replay").click()
    await expect(alice.page.get_by_role("status")).to_have_text("Replayed with the edited body.")
    await expect(alice.page.locator(".pill.st-replayed").first).to_be_visible()
    assert await queue_depth(admin.connection, admin.names.requests) == 1

    audit = await admin.get("/audit", action="dlq.replay")
    [row] = audit["items"]
    assert (row["actor"], row["target"], row["outcome"]) == ("alice", entry_id, "ok")
    assert '"edited":true' in row["detail"]


async def test_replay_is_refused_with_the_reason_when_the_payment_is_final(
    alice: Person, served: Served
) -> None:
    admin = served.admin
    body = await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry_id = await _entry_id(served, payment_id=body["payment_id"])
    await alice.open(f"/ui/entries/{entry_id}")
    # Meanwhile, the payment succeeded.
    await record_succeeded(served.admin.engine, [body["payment_id"]])
    await alice.page.get_by_role("button", name="Replay").click()
    await expect(alice.page.get_by_role("alert")).to_contain_text("Replay refused")
    await expect(alice.page.get_by_role("alert")).to_contain_text("already succeeded")
    await alice.open(f"/ui/entries/{entry_id}")
    await expect(alice.page.get_by_role("note")).to_contain_text("already succeeded")
    await expect(alice.page.get_by_role("button", name="Replay")).to_have_count(0)
    assert await queue_depth(admin.connection, admin.names.requests) == 0


async def test_discard_asks_for_confirmation_and_is_audited(alice: Person, served: Served) -> None:
    admin = served.admin
    body = await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry_id = await _entry_id(served, payment_id=body["payment_id"])
    await alice.open(f"/ui/entries/{entry_id}")
    await alice.page.get_by_role("link", name="Discard…").click()
    await alice.page.get_by_role("link", name="Cancel").click()
    await expect(alice.page.locator(".pill.st-parked").first).to_be_visible()

    await alice.page.get_by_role("link", name="Discard…").click()
    await alice.page.get_by_label("Why (for the audit log)").fill("duplicate of a settled order")
    await alice.shot("discard-confirm")
    await alice.page.get_by_role("button", name="Discard").click()
    await expect(alice.page.get_by_role("status")).to_contain_text("Discarded.")
    await alice.open("/ui/audit?action=dlq.discard")
    await expect(alice.page.locator("table[aria-label='Audit log'] tbody tr")).to_contain_text(
        "duplicate of a settled order"
    )
    await alice.shot("audit")


async def test_payment_lookup(alice: Person, served: Served) -> None:
    admin = served.admin
    body = await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    await record_succeeded(served.admin.engine, [body["payment_id"]])
    await alice.open("/ui/payments")
    await alice.page.get_by_role("textbox", name="Payment id").fill(body["payment_id"])
    await alice.page.get_by_role("button", name="Look up").click()
    await expect(alice.page.get_by_role("table", name="Payment")).to_contain_text("succeeded")
    await expect(alice.page.locator("table.grid tbody tr")).to_have_count(1)
    await alice.shot("payment")
    await alice.page.get_by_role("textbox", name="Payment id").fill("no-such-payment")
    await alice.page.get_by_role("button", name="Look up").click()
    await expect(alice.page.get_by_role("alert")).to_have_text("No payment with that id.")


async def test_the_console_is_usable_from_the_keyboard(alice: Person, served: Served) -> None:
    await alice.open("/ui/")
    await alice.page.keyboard.press("Tab")
    await expect(alice.page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):
        await alice.page.keyboard.press("Tab")
    await expect(alice.page.get_by_role("link", name="Entries", exact=True)).to_be_focused()
    await alice.page.keyboard.press("Enter")
    await alice.page.wait_for_url(served.url + "/ui/entries")
    await asyncio.sleep(0)


async def test_the_pages_work_without_javascript(
    browser: Browser, served: Served, alice: Person
) -> None:
    admin = served.admin
    body = await park(admin.connection, admin.names)
    await admin.wait_handled(1)
    entry_id = await _entry_id(served, payment_id=body["payment_id"])
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(served.url + "/ui/")
        await page.get_by_label("Admin token").fill(OPERATOR_TOKEN)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("[data-count=parked]")).to_have_text("1")
        await page.goto(served.url + f"/ui/entries/{entry_id}")
        await page.get_by_role("button", name="Replay").click()
        await expect(page.get_by_role("status")).to_contain_text("Replayed")
    finally:
        await context.close()
    assert await queue_depth(admin.connection, admin.names.requests) == 1
