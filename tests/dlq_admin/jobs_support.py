"""Helpers of the replay-job tests: park entries per merchant, create and poll jobs with the
progress invariants checked at every poll, read what a job published."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import func, select

from retry.names import DEAD_ROUTING_KEY, Names
from schemas.tables import PaymentAttemptRow
from tests.dlq_admin.conftest import OPERATOR, VIEWER, Admin
from tests.dlq_admin.helpers import park_headers, request_body

Job = dict[str, Any]


async def park_for_merchants(
    connection: AbstractRobustConnection, names: Names, counts: dict[str, int], **headers: Any
) -> list[dict[str, Any]]:
    """Park ``counts[merchant]`` fresh payments per merchant, merchant after merchant (so the
    biggest backlog can be the oldest), one millisecond apart; returns the bodies in order."""
    bodies = [
        request_body(merchant_id=merchant) for merchant, n in counts.items() for _ in range(n)
    ]
    base = datetime.now(UTC) - timedelta(seconds=len(bodies))
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(names.dlx, ensure=False)
        for start in range(0, len(bodies), 500):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            orjson.dumps(body),
                            headers=park_headers(
                                payment_id=body["payment_id"],
                                merchant_id=body["merchant_id"],
                                parked_at=base + timedelta(milliseconds=start + i),
                                **headers,
                            ),
                            content_type="application/json",
                            message_id=body["payment_id"],
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        DEAD_ROUTING_KEY,
                        mandatory=True,
                    )
                    for i, body in enumerate(bodies[start : start + 500])
                )
            )
    finally:
        await channel.close()
    return bodies


def check_figures(job: Job) -> None:
    """The progress invariants a job view keeps at every poll."""
    assert job["published"] + job["skipped"] + job["waiting"] == job["total"], job
    assert job["succeeded"] + job["failed"] + job["following"] == job["published"], job
    assert min(job[k] for k in ("published", "skipped", "waiting", "succeeded", "failed")) >= 0


async def create_job(admin: Admin, expect: int = 201, **body: Any) -> Job:
    response = await admin.client.post("/dlq/replay-jobs", json=body, headers=OPERATOR)
    assert response.status_code == expect, response.text
    job: Job = response.json()
    if expect == 201:
        check_figures(job)
    return job


async def get_job(admin: Admin, job_id: str) -> Job:
    response = await admin.client.get(f"/dlq/replay-jobs/{job_id}", headers=VIEWER)
    assert response.status_code == 200, response.text
    job: Job = response.json()
    check_figures(job)
    return job


async def control(admin: Admin, job_id: str, action: str, **body: Any) -> Job:
    response = await admin.client.post(
        f"/dlq/replay-jobs/{job_id}/{action}", json=body or None, headers=OPERATOR
    )
    assert response.status_code == 200, response.text
    job: Job = response.json()
    check_figures(job)
    return job


async def wait_job(
    admin: Admin,
    job_id: str,
    accept: Callable[[Job], bool],
    timeout: float = 60.0,
    seen: list[Job] | None = None,
) -> Job:
    """Poll the job (its figures checked at every poll) until ``accept`` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = await get_job(admin, job_id)
        if seen is not None:
            seen.append(job)
        if accept(job):
            return job
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"job condition not reached within {timeout}s; last: {job!r}")
        await asyncio.sleep(0.05)


async def published_requests(
    connection: AbstractRobustConnection, names: Names, count: int
) -> list[dict[str, Any]]:
    """Take ``count`` messages off ``N.requests`` in queue order (the order of publishing)."""
    channel = await connection.channel()
    bodies: list[dict[str, Any]] = []
    try:
        queue = await channel.declare_queue(names.requests, passive=True)
        async with asyncio.timeout(30):
            while len(bodies) < count:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.02)  # the job is still publishing
                    continue
                bodies.append(orjson.loads(message.body))
    finally:
        await channel.close()
    return bodies


async def replayed_attempts(admin: Admin, payment_ids: list[str]) -> dict[str, int]:
    """Gateway requests made for replays of these payments, per payment (from the worker's
    attempts table)."""
    engine = admin.runtime.engine
    assert engine is not None
    table = PaymentAttemptRow.__table__  # type: ignore[attr-defined]
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        for start in range(0, len(payment_ids), 500):
            rows = await conn.execute(
                select(table.c.payment_id, func.count())
                .where(
                    table.c.replay_of.is_not(None),
                    table.c.payment_id.in_(payment_ids[start : start + 500]),
                )
                .group_by(table.c.payment_id)
            )
            found.update({str(r[0]): int(r[1]) for r in rows})
    return found
