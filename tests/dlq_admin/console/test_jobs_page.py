"""Replay jobs from the console: replay a group as a job (its frozen count shown first) and
watch it finish, and pause / resume / cancel a running job."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.dlq_admin.console.conftest import Person, Served
from tests.dlq_admin.helpers import EXHAUSTED_AFTER_503, park, queue_depth
from tests.dlq_admin.jobs_support import create_job, get_job, park_for_merchants


async def test_replay_a_group_as_a_job_and_watch_it_finish(
    alice: Person, served: Served, start_worker: Any, gateway: Any
) -> None:
    admin = served.admin
    await start_worker(gateway_url=gateway.url)  # replayed payments are charged for real
    bodies = await park_for_merchants(admin.connection, admin.names, {"m_a": 3, "m_b": 2})
    await park(admin.connection, admin.names, **EXHAUSTED_AFTER_503)
    await admin.wait_handled(6)

    await alice.open("/ui/groups")
    rows = alice.page.locator("table.grid tbody tr")
    await expect(rows).to_have_count(2)
    await alice.shot("groups")
    rejected = rows.filter(has_text="amount_invalid")
    await rejected.get_by_role("button", name="Replay this group").click()
    await expect(alice.page.get_by_test_id("frozen-count")).to_have_text("5")
    await alice.shot("group-replay-confirm")
    assert await queue_depth(admin.connection, admin.names.requests) == 0  # a dry run only

    await alice.page.get_by_role("button", name="Create replay job").click()
    await expect(alice.page.get_by_role("heading", name="Replay job")).to_be_visible()
    state = alice.page.locator("h1 .pill")
    await expect(state).to_have_text("completed", timeout=60_000)  # the page follows the job
    await expect(alice.page.locator("[data-count=succeeded]")).to_have_text("5")
    await expect(alice.page.get_by_role("button", name="Pause")).to_have_count(0)
    await alice.shot("job")
    for body in bodies:
        assert gateway.state.charge_count(body["payment_id"]) == 1

    await alice.open("/ui/jobs")
    await expect(alice.page.locator("table[aria-label='Replay jobs'] tbody tr")).to_have_count(1)
    await alice.shot("jobs")
    assert alice.errors == []


async def test_pause_resume_and_cancel_a_running_job(
    alice: Person, bob: Person, served: Served
) -> None:
    admin = served.admin
    await park_for_merchants(admin.connection, admin.names, {"m_a": 30})
    await admin.wait_handled(30)
    job = await create_job(admin, reason="gateway_rejected", rate=2)  # slow: stays running

    await bob.open(f"/ui/jobs/{job['id']}")
    await expect(bob.page.locator("h1 .pill")).to_have_text("running")
    for name in ("Pause", "Resume", "Cancel"):
        await expect(bob.page.get_by_role("button", name=name)).to_have_count(0)

    await alice.open("/ui/jobs")  # the list follows running jobs too, without a reload
    cell = alice.page.locator(f"[data-count='job-{job['id']}-published']")
    await expect(cell).to_be_visible()
    await expect(cell).not_to_have_text(await cell.inner_text())

    await alice.open(f"/ui/jobs/{job['id']}")
    published = alice.page.locator("[data-count=published]")
    await expect(published).not_to_have_text("0")  # progress shows up live
    await alice.page.get_by_label("Reason").fill("gateway wobbling")
    await alice.page.get_by_role("button", name="Pause").click()
    await expect(alice.page.locator("h1 .pill")).to_have_text("paused")
    await expect(alice.page.get_by_role("status")).to_contain_text("gateway wobbling")
    await alice.shot("job-paused")
    assert (await get_job(admin, job["id"]))["state"] == "paused"

    await alice.page.get_by_role("button", name="Resume").click()
    await expect(alice.page.locator("h1 .pill")).to_have_text("running")
    await alice.page.get_by_role("button", name="Cancel").click()
    await expect(alice.page.locator("h1 .pill")).to_have_text("cancelled")
    final = await get_job(admin, job["id"])
    assert final["state"] == "cancelled"
    assert final["published"] < 30

    audit = await admin.get("/audit", actor="alice")
    actions = [a["action"] for a in audit["items"] if a["target"] == f"job:{job['id']}"]
    assert actions == [
        "dlq.replay_job.cancel",
        "dlq.replay_job.resume",
        "dlq.replay_job.pause",
    ]


async def test_replay_the_entries_a_filter_matches_as_a_job(
    alice: Person, bob: Person, served: Served
) -> None:
    admin = served.admin
    await park_for_merchants(admin.connection, admin.names, {"m_a": 4, "m_b": 3})
    await admin.wait_handled(7)
    await bob.open("/ui/entries?merchant=m_b")
    await expect(bob.page.get_by_role("button", name="Replay matching as a job…")).to_have_count(0)

    await alice.open("/ui/entries")
    await alice.page.get_by_label("Merchant").fill("m_b")
    await alice.page.get_by_role("button", name="Filter").click()
    await alice.page.get_by_role("button", name="Replay matching as a job…").click()
    await expect(alice.page.get_by_test_id("frozen-count")).to_have_text("3")
    await alice.page.get_by_role("button", name="Create replay job").click()
    await expect(alice.page.locator("[data-count=total]")).to_have_text("3")
    job_id = alice.page.url.rsplit("/", 1)[1]
    job = await get_job(admin, job_id)
    assert job["selection"]["merchant_id"] == "m_b"
    assert job["total"] == 3
