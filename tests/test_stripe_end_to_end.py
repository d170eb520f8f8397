"""End to end with ``PAYPROC_GATEWAY=stripe``: worker processes drain payments of every kind
through the local Stripe-speaking server under faults, and the invariants hold.

Nothing lost, nothing charged twice (the server's own ledger), every payment the server
charged is ``succeeded`` in payproc and every ``succeeded`` payment was charged, and the API
key appears in no log.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from processor.db import create_schema
from processor.producer import payment_message, publish_bodies
from retry.topology import declare_topology
from schemas.tables import PaymentRow
from tests.chaos.harness import ROOT, ChaosRun, assert_invariants

pytestmark = [pytest.mark.slow, pytest.mark.chaos]
KEY = "sk_test_e2eSecretThatMustNotBeLogged42"


class StripeRun(ChaosRun):
    """The chaos harness with the worker pointed at the local Stripe-speaking server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_env = {
            "PAYPROC_GATEWAY": "stripe",
            "PAYPROC_STRIPE_API_KEY": KEY,
            "PAYPROC_STRIPE_API_BASE": self.gateway_url,
            **self.extra_env,
        }

    async def open(self, **knobs: Any) -> None:
        self._connection = await aio_pika.connect_robust(self.observer_url)
        await declare_topology(self._connection, self.names, self.delays, 10)
        await create_schema(self._engine)
        args = ["--port", str(self.gateway_port), "--seed", "3"]
        for knob, value in knobs.items():
            args += [f"--{knob.replace('_', '-')}", str(value)]
        log = (self.workdir / "fake-stripe.log").open("ab")
        self._logs.append(log)
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "processor.fake_stripe", *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(self.gateway_url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("the local Stripe server did not start")

    async def publish_bodies(self, bodies: list[dict[str, Any]]) -> None:
        assert self._connection is not None
        for body in bodies:
            self.published.valid[body["payment_id"]] = body
        await publish_bodies(self._connection, self.names, [payment_message(b) for b in bodies])

    async def statuses(self) -> dict[str, str]:
        table: Any = PaymentRow.__table__  # type: ignore[attr-defined]
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(table.c.payment_id, table.c.status))
            return {r[0]: r[1] for r in rows}


@pytest.fixture
async def stripe_run(amqp_url: str, database_url: str, tmp_path: Path) -> AsyncIterator[StripeRun]:
    run = StripeRun(amqp_url, database_url, tmp_path, seed=18)
    try:
        yield run
    finally:
        await run.close()


def special(**fields: Any) -> dict[str, Any]:
    body = {
        "payment_id": str(uuid.uuid4()),
        "amount": 2500,
        "currency": "EUR",
        "merchant_id": "m_special",
        "payment_method": "pm_card_visa",
        "metadata": {"kind": "special"},
    }
    body.update(fields)
    return body


async def test_a_stripe_worker_drains_every_kind_of_payment_under_faults(
    stripe_run: StripeRun,
) -> None:
    run = stripe_run
    await run.open(
        failure_rate=0.1,
        rate_limit_rate=0.05,
        retry_after=0.3,
        timeout_rate=0.02,
        charge_then_timeout_rate=0.05,
        hang_seconds=1.5,
        processing_seconds=0.4,
    )
    await run.start_worker(0)
    await run.start_worker(1)
    # Generated: cards and SEPA debits (``processing`` first), declines and rejections by
    # amount, duplicates, malformed messages, and same ids with other amounts.
    await run.publish(250, malformed=20, duplicates=10, conflicts=3, decline_rate=0.05)
    kinds = {
        "authentication_required": special(payment_method="pm_card_authenticationRequired"),
        "insufficient_funds": special(payment_method="pm_card_chargeDeclinedInsufficientFunds"),
        "zero_decimal": special(currency="JPY", amount=5000),
        "below_minimum": special(currency="JPY", amount=10),
        "three_decimal": special(currency="KWD", amount=5120),
        "three_decimal_refused": special(currency="KWD", amount=5125),
        "processing": special(payment_method="pm_sepa_debit"),
    }
    await run.publish_bodies(list(kinds.values()))
    await asyncio.sleep(1.0)  # let work get in flight so the kill lands mid-stream
    await run.kill_worker(1)
    drain = await run.settle(timeout=240)
    report = await run.verify(drain)
    print("\n" + report.table())
    assert_invariants(report, run)

    status = await run.statuses()
    async with httpx.AsyncClient() as client:
        ledger = (await client.get(run.gateway_url + "/_stats")).json()
    charged = ledger["charges_by_key"]
    assert all(count == 1 for count in charged.values())
    succeeded = {pid for pid in run.published.valid if status.get(pid) == "succeeded"}
    assert set(charged) == succeeded, "charged <=> succeeded"
    expected = {
        "authentication_required": "declined",
        "insufficient_funds": "declined",
        "zero_decimal": "succeeded",
        "below_minimum": "dead_lettered",
        "three_decimal": "succeeded",
        "three_decimal_refused": "dead_lettered",
        "processing": "succeeded",
    }
    assert {kind: status[body["payment_id"]] for kind, body in kinds.items()} == expected
    sepa = [p for p, b in run.published.valid.items() if b["payment_method"] == "pm_sepa_debit"]
    assert sepa, "SEPA debits (processing first) were part of the run"
    assert ledger["replays"] > 0, "retries were answered from Stripe's idempotency store"
    assert report.status["declined"] >= 2
    assert report.parked_by_reason["gateway_rejected"] >= 2
    for log in run.workdir.glob("*.log"):
        assert KEY not in log.read_text(errors="replace"), f"API key in {log.name}"
