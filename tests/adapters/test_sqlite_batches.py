"""SQLite's fast path (``SqliteBatches``) next to the portable SQLAlchemy path.

The store's behaviour is covered by ``test_sql_store.py``, which runs every test on both
paths. Here: what only the fast path can get wrong. Its rows must be the rows SQLAlchemy
writes (the admin API and the portable path read them), a lease written by one path must
hold against the other (the claim compares timestamps as text), and a database locked by
someone else must surface as ``StoreUnavailable`` (the worker then waits and retries)
instead of an error that would park the payment.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from processor.adapters.portable_batches import PortableBatches
from processor.adapters.sql_store import SqlPaymentStore
from processor.adapters.sqlite_batches import SqliteBatches, from_text, to_text
from processor.adapters.store_batches import ClaimBatch
from processor.adapters.store_rows import ClaimItem
from processor.db import create_schema, make_engine
from processor.ports import AttemptOutcome, AttemptRecord, Claimed, HeldElsewhere, StoreUnavailable
from schemas.outcome import PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import PaymentRow

LEASE = 30.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite:///{db_path}")
    await create_schema(engine)
    yield engine
    await engine.dispose()


def make_request() -> PaymentRequest:
    return PaymentRequest.model_validate(
        {
            "payment_id": str(uuid.uuid4()),
            "amount": 1999,
            "currency": "EUR",
            "merchant_id": "m_123",
            "payment_method": "pm_card_visa",
        }
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 6, 1, 12, 0, 0, 0, tzinfo=UTC),  # no microseconds: still written
        datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2024, 6, 1, 14, 30, 5, 7, tzinfo=timezone(timedelta(hours=2))),
    ],
    ids=["whole-second", "microseconds", "utc+2"],
)
async def test_timestamps_are_written_as_sqlalchemy_writes_them(
    engine: AsyncEngine, db_path: Path, moment: datetime
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(PaymentRow.__table__),  # type: ignore[attr-defined]
            {
                "payment_id": "p1",
                "status": "processing",
                "attempts": 1,
                "amount": 1,
                "currency": "EUR",
                "merchant_id": "m",
                "fingerprint": "f",
                "lease_until": moment,
                "created_at": moment,
                "updated_at": moment,
            },
        )
    with sqlite3.connect(db_path) as raw:
        (stored,) = raw.execute("SELECT lease_until FROM payments").fetchone()
    assert to_text(moment) == stored
    assert from_text(stored) == moment


async def test_a_lease_taken_on_one_path_holds_on_the_other(engine: AsyncEngine) -> None:
    fast = SqlPaymentStore(engine, fast_path=True)
    portable = SqlPaymentStore(engine, fast_path=False)
    first, second = make_request(), make_request()

    assert isinstance(await portable.claim(first, "portable-owner", LEASE, False), Claimed)
    held = await fast.claim(first, "fast-owner", LEASE, False)
    assert isinstance(held, HeldElsewhere)
    assert LEASE - 5 < held.seconds_left <= LEASE

    assert isinstance(await fast.claim(second, "fast-owner", LEASE, False), Claimed)
    held = await portable.claim(second, "portable-owner", LEASE, False)
    assert isinstance(held, HeldElsewhere)
    assert LEASE - 5 < held.seconds_left <= LEASE

    # An expired lease (a crashed worker's) is taken over, whichever path wrote it.
    third = make_request()
    assert isinstance(await portable.claim(third, "crashed", -1.0, False), Claimed)
    assert await fast.claim(third, "fast-owner", LEASE, False) == Claimed(attempts=2)
    await fast.aclose()


async def test_a_locked_database_is_unavailable_and_nothing_is_half_written(
    engine: AsyncEngine, db_path: Path
) -> None:
    batches = SqliteBatches(engine, busy_timeout=0.2)
    request = make_request()
    now = datetime.now(UTC)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            await batches.claim_many(ClaimBatch([ClaimItem(request, "w1", LEASE, False)], now))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await SqlPaymentStore(engine, fast_path=False).get(request.key) is None

    # Once the other writer is gone the same store works: the claim, then its outcome.
    batch = ClaimBatch([ClaimItem(request, "w1", LEASE, False)], now)
    await batches.claim_many(batch)
    assert batch.results() == [Claimed(attempts=1)]
    attempt = AttemptRecord(
        attempt=1,
        started_at=now,
        finished_at=now + timedelta(milliseconds=5),
        outcome="succeeded",
        http_status=200,
        error=None,
        replay_of=None,
    )
    (snapshot,) = await batches.record_many(
        [AttemptOutcome(request.key, "w1", attempt, PaymentStatus.SUCCEEDED, charge_id="ch_1")], now
    )
    assert snapshot.status is PaymentStatus.SUCCEEDED
    assert snapshot.gateway_charge_id == "ch_1"
    assert snapshot.updated_at == now
    await batches.aclose()


async def test_a_disposed_engine_closes_the_fast_path(engine: AsyncEngine) -> None:
    store = SqlPaymentStore(engine, fast_path=True)
    assert isinstance(await store.claim(make_request(), "w1", LEASE, False), Claimed)
    await engine.dispose()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.claim(make_request(), "w1", LEASE, False)


def test_an_in_memory_database_keeps_the_portable_path() -> None:
    memory = create_async_engine("sqlite+aiosqlite://")
    assert not SqliteBatches.usable(memory)
    with pytest.raises(ValueError, match="database file"):
        SqliteBatches(memory)
    assert isinstance(SqlPaymentStore(memory).writer, PortableBatches)
