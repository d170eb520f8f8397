"""Pure parts of replay jobs: merchant interleaving, pacing and ramp, skip reasons, figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dlq_admin.jobs.execution import Pacing, skip_reason
from dlq_admin.jobs.model import Figures
from dlq_admin.jobs.planner import by_merchant, interleave
from dlq_admin.rows import Entry
from schemas.dlq import EntryStatus
from schemas.outcome import ParkReason

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entry(entry_id: str, merchant: str | None, status: EntryStatus = EntryStatus.PARKED) -> Entry:
    return Entry(
        id=entry_id,
        status=status,
        reason=ParkReason.RETRIES_EXHAUSTED,
        fingerprint="f",
        error_code=None,
        error_message=None,
        http_status=None,
        exception_type=None,
        attempts=1,
        payment_id=f"p-{entry_id}",
        merchant_id=merchant,
        dead_lettered_at=NOW,
        ingested_at=NOW,
        body_bytes=10,
        content_type=None,
        message_id=None,
        correlation_id=None,
        reply_to=None,
        origin=None,
        replay_of=None,
        replayed_at=None,
        replayed_by=None,
        discarded_at=None,
        discarded_by=None,
        updated_at=NOW,
    )


def test_interleave_is_round_robin_by_merchant_each_merchant_oldest_first() -> None:
    found = [entry(f"a{i}", "m_a") for i in range(4)] + [entry("b0", "m_b"), entry("c0", None)]
    found += [entry("b1", "m_b")]
    order = [e.entry_id for e in interleave(found)]
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert by_merchant(interleave(found)) == {"m_a": 4, "m_b": 2, "(none)": 1}


def test_pacing_batches_follow_the_ramp_then_half_a_second_of_the_rate() -> None:
    paced = Pacing(rate=200, ramp=[1, 2, 5, 500])
    assert [paced.batch(step) for step in range(6)] == [1, 2, 5, 100, 100, 100]
    assert Pacing(rate=0.5, ramp=None).batch(0) == 1
    assert Pacing(rate=100_000, ramp=None).chunk == 500


def test_skip_reasons_are_the_replay_rules() -> None:
    stale = NOW - timedelta(minutes=5)
    assert skip_reason(None, None, stale) == "not_found"
    assert skip_reason(entry("x", "m"), None, stale) is None
    assert skip_reason(entry("x", "m"), "retrying", stale) is None
    assert skip_reason(entry("x", "m"), "succeeded", stale) == "payment_succeeded"
    assert skip_reason(entry("x", "m"), "declined", stale) == "payment_declined"
    assert skip_reason(entry("x", "m", EntryStatus.REPLAYED), None, stale) == "replayed_elsewhere"
    assert skip_reason(entry("x", "m", EntryStatus.REPLAYING), None, stale) == "claimed_elsewhere"
    assert skip_reason(entry("x", "m", EntryStatus.DISCARDED), None, stale) == "entry_discarded"
    assert skip_reason(replace(entry("x", "m"), payment_id=None), None, stale) == "no_payment_id"


def test_figures_count_every_frozen_entry_once() -> None:
    counts = {"waiting": 3, "claimed": 2, "published": 4, "succeeded": 5, "failed": 1}
    figures = Figures.from_counts(19, {**counts, "skipped": 4}, {"payment_succeeded": 4})
    assert figures.all_published == 10
    assert figures.unpublished == 5
    assert figures.all_published + figures.skipped + figures.unpublished == figures.total
