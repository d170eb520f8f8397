"""Gateway protection end to end: real worker processes, the real broker, the fake gateway
with payment- and merchant-sticky faults and a rate limit it enforces itself.

* a fault that follows some payments (or one merchant) never opens the circuit: those
  payments walk their ladder and park, every other payment goes through at once;
* ``PAYPROC_GATEWAY_RATE_LIMIT`` is held by 1, 2 or 4 workers together, with almost no 429
  from the gateway's own limiter and nothing lost.

The precise rate accuracy is measured in ``bench/rate_limit.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from processor.fake_gateway.faults import sticky_fails
from processor.producer import generate_payment, payment_message, publish_bodies
from schemas.tables import PaymentRow
from tests.chaos.harness import ChaosRun, assert_invariants

pytestmark = [pytest.mark.slow]

LADDER = (0.1, 0.2, 0.4)
MAX_ATTEMPTS = 4
STICKY_SHARE = 0.2


class ProtectionRun(ChaosRun):
    """A chaos run that publishes chosen payments and reads when each became final."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published_at: dict[str, float] = {}

    def payment(self, merchant: str | None = None, *, sticky: bool | None = None) -> dict[str, Any]:
        """A fresh payment (of ``merchant``), sticky-failing or not as asked."""
        while True:
            body = generate_payment(self.rng)
            if merchant is not None:
                body["merchant_id"] = merchant
            if sticky is None or sticky_fails(body["payment_id"], STICKY_SHARE) == sticky:
                return body

    async def send(self, bodies: list[dict[str, Any]]) -> None:
        assert self._connection is not None
        now = time.time()
        for body in bodies:
            self.published.valid[body["payment_id"]] = body
            self.published_at[body["payment_id"]] = now
        await publish_bodies(self._connection, self.names, [payment_message(b) for b in bodies])

    async def rows(self, ids: list[str]) -> dict[str, tuple[str, str | None, float]]:
        """``{payment_id: (status, dead_letter_reason, seconds from publish to last update)}``."""
        table: Any = PaymentRow.__table__  # type: ignore[attr-defined]
        async with self._engine.connect() as conn:
            found = await conn.execute(
                select(
                    table.c.payment_id,
                    table.c.status,
                    table.c.dead_letter_reason,
                    table.c.updated_at,
                ).where(table.c.payment_id.in_(ids))
            )
            result = {}
            for pid, status, reason, updated in found:
                stamp = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
                waited = stamp.timestamp() - self.published_at[pid]
                result[pid] = (status, reason, waited)
            return result

    async def wait_final(
        self, ids: list[str], timeout: float
    ) -> dict[str, tuple[str, str | None, float]]:
        """Wait until every payment in ``ids`` is final (or the timeout passes)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.rows(ids)
            done = {
                p: r for p, r in rows.items() if r[0] in ("succeeded", "declined", "dead_lettered")
            }
            if len(done) == len(ids) or time.monotonic() > deadline:
                return done
            await asyncio.sleep(0.1)

    async def wait_for_log(self, index: int, text: str, timeout: float = 30) -> None:
        log = self.workdir / f"worker-{index}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and text in log.read_text(errors="replace"):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker-{index} never logged {text!r}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("worker-*.log"))

    async def gateway_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            answer = await client.get(self.gateway_url + "/_stats?summary=1")
            return dict(answer.json())


@pytest.fixture
async def protection(
    amqp_url: str, database_url: str, tmp_path: Path
) -> AsyncIterator[Callable[..., ProtectionRun]]:
    runs: list[ProtectionRun] = []

    def make(**kwargs: Any) -> ProtectionRun:
        kwargs.setdefault("delays", LADDER)
        kwargs.setdefault("max_attempts", MAX_ATTEMPTS)
        kwargs.setdefault("prefetch", 50)
        run = ProtectionRun(amqp_url, database_url, tmp_path, **kwargs)
        runs.append(run)
        return run

    yield make
    for run in runs:
        await run.close()


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def test_payments_that_always_fail_park_while_healthy_traffic_flows(protection) -> None:
    """20% of payments get a 503 on every attempt, in a steady flow: the circuit never opens,
    healthy payments finish within a second or two, the failing ones park after their
    ladder as retries_exhausted."""
    run = protection()
    await run.open(sticky_failure_share=STICKY_SHARE, latency=0.002)
    await run.start_worker(0)
    await run.wait_for_log(0, "worker consuming")
    for _ in range(10):
        await run.send([run.payment() for _ in range(40)])
        await asyncio.sleep(0.3)  # the traffic's pace: a steady flow, not one backlog
    ids = list(run.published.valid)
    rows = await run.wait_final(ids, timeout=60)
    assert len(rows) == len(ids)
    failing = [p for p in ids if sticky_fails(p, STICKY_SHARE)]
    healthy = [p for p in ids if p not in failing]
    assert len(failing) > 40
    assert {rows[p][:2] for p in failing} == {("dead_lettered", "retries_exhausted")}
    assert {rows[p][0] for p in healthy} == {"succeeded"}
    assert "closed -> open" not in run.logs()
    latencies = [rows[p][2] for p in healthy]
    print(f"healthy p50 {sorted(latencies)[len(latencies) // 2]:.3f} s, p99 {p99(latencies):.3f} s")
    assert p99(latencies) < 2.0
    report = await run.verify(0)
    assert_invariants(report, run)


async def test_ten_failing_payments_alone_park_and_a_healthy_one_goes_through(
    protection,
) -> None:
    """Ten payments failing on every attempt with no other traffic (their retry copies come
    back together) park within the ladder plus a few seconds; a healthy payment published
    behind them succeeds within a few seconds."""
    run = protection()
    await run.open(sticky_failure_share=STICKY_SHARE)
    await run.start_worker(0)
    await run.wait_for_log(0, "worker consuming")
    failing = [run.payment(sticky=True) for _ in range(10)]
    await run.send(failing)
    ids = [b["payment_id"] for b in failing]
    ladder = sum(LADDER)
    rows = await run.wait_final(ids, timeout=ladder + 5)
    assert len(rows) == 10, "not all parked within the ladder plus a few seconds"
    assert {r[:2] for r in rows.values()} == {("dead_lettered", "retries_exhausted")}
    assert max(r[2] for r in rows.values()) < ladder + 5
    healthy = run.payment(sticky=False)
    await run.send([healthy])
    done = await run.wait_final([healthy["payment_id"]], timeout=5)
    assert done[healthy["payment_id"]][0] == "succeeded"
    assert "closed -> open" not in run.logs()


async def test_one_failing_merchant_does_not_affect_four_healthy_ones(protection) -> None:
    """A merchant whose every charge fails sends most of the traffic: it is isolated, its
    payments park after their ladder, the four other merchants' payments go straight
    through and the circuit never opens."""
    run = protection()
    await run.open(failing_merchants="m_bad", latency=0.002)
    await run.start_worker(0)
    await run.wait_for_log(0, "worker consuming")
    healthy_merchants = ["m_a", "m_b", "m_c", "m_d"]
    for wave in range(8):
        bodies = [run.payment("m_bad", sticky=False) for _ in range(25)]
        bodies += [run.payment(healthy_merchants[(wave + i) % 4], sticky=False) for i in range(3)]
        random.Random(wave).shuffle(bodies)
        await run.send(bodies)
        await asyncio.sleep(0.3)  # the traffic's pace
    ids = list(run.published.valid)
    rows = await run.wait_final(ids, timeout=60)
    assert len(rows) == len(ids)
    bad = [p for p in ids if run.published.valid[p]["merchant_id"] == "m_bad"]
    good = [p for p in ids if p not in bad]
    assert {rows[p][:2] for p in bad} == {("dead_lettered", "retries_exhausted")}
    assert {rows[p][0] for p in good} == {"succeeded"}
    latencies = [rows[p][2] for p in good]
    print(f"healthy p50 {sorted(latencies)[len(latencies) // 2]:.3f} s, p99 {p99(latencies):.3f} s")
    assert p99(latencies) < 2.0
    logs = run.logs()
    assert "closed -> open" not in logs
    assert "merchant isolated" in logs
    report = await run.verify(0)
    assert_invariants(report, run)


@pytest.mark.parametrize("workers", [1, 2, 4])
async def test_the_rate_limit_is_shared_by_every_worker(protection, workers: int) -> None:
    """PAYPROC_GATEWAY_RATE_LIMIT=150 with 1, 2 or 4 workers over a backlog: the gateway's own
    150/s limiter answers 429 to under 1% of requests, and every payment succeeds."""
    limit = 150
    run = protection(extra_env={"PAYPROC_GATEWAY_RATE_LIMIT": str(limit)})
    await run.open(rate_limit=limit)
    for index in range(workers):
        await run.start_worker(index)
    for index in range(workers):
        await run.wait_for_log(index, f"over {workers} workers")
    await run.send([run.payment() for _ in range(600)])
    drain = await run.settle(timeout=120)
    stats = await run.gateway_stats()
    print(stats["requests"], stats["protection"], drain)
    limited = stats["protection"]["rate_limited"]
    assert limited < 0.01 * stats["requests"], stats
    assert stats["requests"] / stats["protection"]["span_s"] < limit * 1.1, stats
    report = await run.verify(drain)
    assert_invariants(report, run)
    assert report.status["succeeded"] == 600


async def test_a_429_slows_the_sender_not_only_that_payment(protection) -> None:
    """The gateway enforces 100/s while the worker is allowed 300/s: its 429s pause and
    halve the worker's sending (AIMD), so most requests get through instead of half of them
    being refused; every payment still succeeds once."""
    run = protection(extra_env={"PAYPROC_GATEWAY_RATE_LIMIT": "300"})
    await run.open(rate_limit=100)
    await run.start_worker(0)
    await run.wait_for_log(0, "over 1 workers")
    await run.send([run.payment() for _ in range(500)])
    drain = await run.settle(timeout=120)
    stats = await run.gateway_stats()
    print(stats["requests"], stats["protection"], drain)
    assert stats["protection"]["rate_limited"] < 0.2 * stats["requests"], stats
    report = await run.verify(drain)
    assert_invariants(report, run)
    assert report.status["succeeded"] == 500


async def test_lookups_of_in_doubt_charges_take_their_share_of_the_rate_limit(protection) -> None:
    """Every charge is made and its answer lost, so each payment needs a charge and then a
    lookup: both are gateway requests under PAYPROC_GATEWAY_RATE_LIMIT=100, and with the
    gateway enforcing 100/s over both, under 1% are refused and every payment ends
    ``succeeded`` (none ``unknown`` for want of a lookup the gateway refused). Every answer
    lost looks like an outage, so the circuit is kept out of the way with a high threshold."""
    limit = 100
    run = protection(
        max_attempts=1,
        gateway_timeout=0.3,
        extra_env={"PAYPROC_GATEWAY_RATE_LIMIT": str(limit), "PAYPROC_CIRCUIT_THRESHOLD": "10000"},
    )
    await run.open(rate_limit=limit, charge_then_timeout_rate=1.0, hang_seconds=1.0)
    await run.start_worker(0)
    await run.wait_for_log(0, "over 1 workers")
    await run.send([run.payment() for _ in range(300)])
    drain = await run.settle(timeout=120)
    stats = await run.gateway_stats()
    print(stats["requests"], stats["lookups"], stats["protection"], drain)
    assert stats["lookups"] == 300, stats
    assert stats["protection"]["rate_limited"] < 0.01 * (stats["requests"] + 300), stats
    report = await run.verify(drain)
    assert_invariants(report, run)
    assert report.status["succeeded"] == 300


async def test_when_failing_payments_open_the_circuit_a_healthy_one_still_gets_through(
    protection,
) -> None:
    """With a low threshold (5 payments), ten always-failing payments alone do open the
    circuit. Probes then pass over the payments known to fail (those walk their ladder
    instead of being spared), so a healthy payment published behind them succeeds within the
    cool-down plus a few seconds, and the failing ones still park."""
    run = protection(extra_env={"PAYPROC_CIRCUIT_THRESHOLD": "5", "PAYPROC_CIRCUIT_COOLDOWN": "1"})
    await run.open(sticky_failure_share=STICKY_SHARE)
    await run.start_worker(0)
    await run.wait_for_log(0, "worker consuming")
    failing = [run.payment(sticky=True) for _ in range(10)]
    await run.send(failing)
    await run.wait_for_log(0, "closed -> open")
    healthy = run.payment(sticky=False)
    await run.send([healthy])
    done = await run.wait_final([healthy["payment_id"]], timeout=1 + 5)
    assert done[healthy["payment_id"]][0] == "succeeded"
    ids = [b["payment_id"] for b in failing]
    rows = await run.wait_final(ids, timeout=30)
    assert len(rows) == 10
    assert {r[:2] for r in rows.values()} == {("dead_lettered", "retries_exhausted")}
