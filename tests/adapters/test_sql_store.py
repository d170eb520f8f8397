"""The SQL payment store on SQLite and PostgreSQL: claims, leases, final rows, outages."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from processor.adapters.batching_store import BatchingStore
from processor.adapters.resilient_store import ResilientStore
from processor.adapters.sql_store import SqlPaymentStore, batch_writer
from processor.adapters.store_batches import BatchWriter, ClaimBatch
from processor.adapters.store_rows import ClaimItem
from processor.db import create_schema, make_engine
from processor.ports import (
    AlreadyFinal,
    AttemptOutcome,
    AttemptRecord,
    Claimed,
    ClaimResult,
    FingerprintConflict,
    HeldElsewhere,
    PaymentSnapshot,
    PaymentStore,
    StoreUnavailable,
)
from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus
from schemas.payment import PaymentRequest
from schemas.tables import PaymentAttemptRow
from tests.support import pg
from tests.support.broker import PG_ADMIN_URL, require

LEASE = 30.0
BUSY = ErrorInfo(code="http_503", message="gateway answered 503")
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A throw-away PostgreSQL database for this module, dropped at the end."""
    require(PG_ADMIN_URL, 5432, "PostgreSQL")
    name = f"payproc_ut_{uuid.uuid4().hex[:10]}"
    pg.create_database(PG_ADMIN_URL, name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        pg.drop_database(PG_ADMIN_URL, name)


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-portable",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-portable", marks=pytest.mark.postgres),
    ]
)
def db_kind(request: pytest.FixtureRequest) -> str:
    """Each database runs twice: with its fast path (``PgBatches``, ``SqliteBatches``: what
    the worker uses) and with the portable SQLAlchemy statements."""
    return str(request.param)


@pytest.fixture
def db_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if db_kind.startswith("postgres"):
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def fast_path(db_kind: str) -> bool:
    return not db_kind.endswith("-portable")


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture(params=["direct", "batching"])
def store(engine: AsyncEngine, fast_path: bool, request: pytest.FixtureRequest) -> PaymentStore:
    """The SQL store, alone and behind the worker's group-commit wrapper: same semantics."""
    sql = SqlPaymentStore(engine, fast_path=fast_path)
    return BatchingStore(sql) if request.param == "batching" else sql


def make_request(payment_id: str | None = None, **fields: Any) -> PaymentRequest:
    data: dict[str, Any] = {
        "payment_id": payment_id or str(uuid.uuid4()),
        "amount": 1999,
        "currency": "EUR",
        "merchant_id": "m_123",
        "payment_method": "pm_card_visa",
    }
    data.update(fields)
    return PaymentRequest.model_validate(data)


def attempt(number: int = 1, outcome: str = "succeeded", **fields: Any) -> AttemptRecord:
    values: dict[str, Any] = {
        "attempt": number,
        "started_at": T0,
        "finished_at": T0 + timedelta(milliseconds=250),
        "outcome": outcome,
        "http_status": 200,
        "error": None,
        "replay_of": None,
    }
    values.update(fields)
    return AttemptRecord(**values)


async def stored(store: PaymentStore, payment_id: str) -> PaymentSnapshot:
    snapshot = await store.get(payment_id)
    assert snapshot is not None
    return snapshot


async def finish(
    store: PaymentStore, request: PaymentRequest, status: PaymentStatus, **kwargs: Any
) -> PaymentSnapshot:
    assert isinstance(await store.claim(request, "w1", LEASE, reopen=False), Claimed)
    return await store.record(AttemptOutcome(request.key, "w1", attempt(), status, **kwargs))


# ---- claims and leases -----------------------------------------------------------------------


async def test_first_claim_inserts_a_processing_row(store: PaymentStore) -> None:
    """Claiming a new payment commits a processing row with one attempt."""
    request = make_request()
    assert await store.claim(request, "w1", LEASE, reopen=False) == Claimed(attempts=1)
    snapshot = await stored(store, request.key)
    assert (snapshot.status, snapshot.attempts) == (PaymentStatus.PROCESSING, 1)
    assert snapshot.updated_at.tzinfo is not None


async def test_claim_by_another_owner_while_leased_is_held_elsewhere(
    store: PaymentStore,
) -> None:
    """A second worker sees the payment held, with the seconds the lease has left."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    result = await store.claim(request, "w2", LEASE, reopen=False)
    assert isinstance(result, HeldElsewhere)
    assert 0 < result.seconds_left <= LEASE
    assert (await stored(store, request.key)).attempts == 1


async def test_the_lease_owner_can_claim_again(store: PaymentStore) -> None:
    """The worker that holds the lease (a redelivery to it) may claim again."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    assert await store.claim(request, "w1", LEASE, reopen=False) == Claimed(attempts=2)


async def test_an_expired_lease_can_be_taken_by_another_owner(store: PaymentStore) -> None:
    """Once a lease has run out (a crashed worker), another worker can claim the payment."""
    request = make_request()
    await store.claim(request, "w1", -1.0, reopen=False)  # a lease that already expired
    assert await store.claim(request, "w2", LEASE, reopen=False) == Claimed(attempts=2)


async def test_release_lets_another_owner_claim_at_once(store: PaymentStore) -> None:
    """Releasing a lease after a crash lets the redelivery in; others' releases do nothing."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    await store.release(request.key, "w2")
    assert isinstance(await store.claim(request, "w2", LEASE, reopen=False), HeldElsewhere)
    await store.release(request.key, "w1")
    assert isinstance(await store.claim(request, "w2", LEASE, reopen=False), Claimed)


async def test_retrying_payment_can_be_claimed_by_any_owner(store: PaymentStore) -> None:
    """Recording a retry drops the lease, so the retry copy can go to any worker."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    snapshot = await store.record(
        AttemptOutcome(
            request.key,
            "w1",
            attempt(outcome="transient:server_error"),
            PaymentStatus.RETRYING,
            error=BUSY,
        ),
    )
    assert (snapshot.status, snapshot.last_error) == (PaymentStatus.RETRYING, BUSY)
    assert await store.claim(request, "w2", LEASE, reopen=False) == Claimed(attempts=2)


# ---- final rows ------------------------------------------------------------------------------


async def test_recording_success_makes_the_payment_final(store: PaymentStore) -> None:
    """A recorded success stores the charge id and the succeeded status."""
    request = make_request()
    snapshot = await finish(store, request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    assert (snapshot.status, snapshot.gateway_charge_id, snapshot.last_error) == (
        PaymentStatus.SUCCEEDED,
        "ch_1",
        None,
    )
    assert snapshot == await stored(store, request.key)


async def test_claim_after_final_is_already_final(store: PaymentStore) -> None:
    """A redelivered final payment is not claimed: the stored result comes back instead."""
    request = make_request()
    await finish(store, request, PaymentStatus.DECLINED, error=BUSY)
    result = await store.claim(request, "w2", LEASE, reopen=False)
    assert isinstance(result, AlreadyFinal)
    assert (result.snapshot.status, result.snapshot.last_error) == (PaymentStatus.DECLINED, BUSY)


async def test_same_payment_id_with_another_amount_is_a_fingerprint_conflict(
    store: PaymentStore,
) -> None:
    """Reusing a payment_id with another amount or merchant is refused and changes nothing."""
    request = make_request()
    await finish(store, request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    for other in (
        make_request(request.key, amount=5000),
        make_request(request.key, merchant_id="m_other"),
        make_request(request.key, currency="USD"),
    ):
        result = await store.claim(other, "w2", LEASE, reopen=False)
        assert isinstance(result, FingerprintConflict)
        assert result.error.code == "idempotency_conflict"
    snapshot = await stored(store, request.key)
    assert (snapshot.status, snapshot.gateway_charge_id) == (PaymentStatus.SUCCEEDED, "ch_1")


async def test_fingerprint_conflict_while_another_copy_is_processing(
    store: PaymentStore,
) -> None:
    """A conflicting copy is refused even while the original is still being charged."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    result = await store.claim(make_request(request.key, amount=1), "w2", LEASE, reopen=False)
    assert isinstance(result, FingerprintConflict)


async def test_reopen_claims_a_dead_lettered_payment(store: PaymentStore) -> None:
    """A replay (reopen) of a dead-lettered payment claims it and clears the park reason."""
    request = make_request()
    await finish(
        store,
        request,
        PaymentStatus.DEAD_LETTERED,
        error=BUSY,
        park_reason=ParkReason.RETRIES_EXHAUSTED,
    )
    assert isinstance(await store.claim(request, "w2", LEASE, reopen=False), AlreadyFinal)
    assert await store.claim(request, "w2", LEASE, reopen=True) == Claimed(attempts=2)
    snapshot = await stored(store, request.key)
    assert (snapshot.status, snapshot.dead_letter_reason) == (PaymentStatus.PROCESSING, None)


async def test_reopen_never_reclaims_a_succeeded_payment(store: PaymentStore) -> None:
    """Replaying a payment that succeeded is refused: the local final row is the authority."""
    request = make_request()
    await finish(store, request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    assert isinstance(await store.claim(request, "w2", LEASE, reopen=True), AlreadyFinal)


async def test_record_never_overwrites_a_final_status(store: PaymentStore) -> None:
    """A stale retrying or dead-letter outcome after a success leaves the success stored."""
    request = make_request()
    await finish(store, request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    late = await store.record(
        AttemptOutcome(
            request.key, "w2", attempt(2, "transient:timeout"), PaymentStatus.RETRYING, error=BUSY
        )
    )
    parked = await store.record(
        AttemptOutcome(
            request.key,
            "w2",
            attempt(3, "rejected"),
            PaymentStatus.DEAD_LETTERED,
            error=BUSY,
            park_reason=ParkReason.GATEWAY_REJECTED,
        ),
    )
    for snapshot in (late, parked, await stored(store, request.key)):
        assert (snapshot.status, snapshot.gateway_charge_id, snapshot.last_error) == (
            PaymentStatus.SUCCEEDED,
            "ch_1",
            None,
        )


async def test_attempt_rows_are_written_for_every_record(
    store: PaymentStore, engine: AsyncEngine
) -> None:
    """Each recorded attempt leaves a history row with outcome, status, error and duration."""
    request = make_request()
    await store.claim(request, "w1", LEASE, reopen=False)
    await store.record(
        AttemptOutcome(
            request.key,
            "w1",
            attempt(1, "transient:server_error", http_status=503, error=BUSY),
            PaymentStatus.RETRYING,
            error=BUSY,
        ),
    )
    await store.claim(request, "w1", LEASE, reopen=False)
    await store.record(
        AttemptOutcome(
            request.key, "w1", attempt(2, replay_of="dlq-1"), PaymentStatus.SUCCEEDED, charge_id="c"
        )
    )
    table = PaymentAttemptRow.__table__  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(table).where(table.c.payment_id == request.key).order_by(table.c.attempt)
            )
        ).all()
    assert [(r.attempt, r.outcome, r.http_status, r.error_code, r.replay_of) for r in rows] == [
        (1, "transient:server_error", 503, "http_503", None),
        (2, "succeeded", 200, None, "dlq-1"),
    ]
    assert rows[0].duration_ms == pytest.approx(250.0)


async def test_mark_dead_lettered_marks_open_rows_only(store: PaymentStore) -> None:
    """Poison parking marks an open payment, leaves a final one alone, and ignores unknown ids."""
    open_request, done_request = make_request(), make_request()
    await store.claim(open_request, "w1", LEASE, reopen=False)
    await finish(store, done_request, PaymentStatus.SUCCEEDED, charge_id="ch_1")
    error = ErrorInfo(code="processing_crashed", message="KeyError: x")

    marked = await store.mark_dead_lettered(open_request.key, ParkReason.POISON, error)
    untouched = await store.mark_dead_lettered(done_request.key, ParkReason.POISON, error)
    missing = await store.mark_dead_lettered(str(uuid.uuid4()), ParkReason.POISON, error)

    assert marked is not None
    assert (marked.status, marked.dead_letter_reason, marked.last_error) == (
        PaymentStatus.DEAD_LETTERED,
        "poison",
        error,
    )
    assert untouched is not None
    assert untouched.status is PaymentStatus.SUCCEEDED
    assert missing is None


async def test_get_of_an_unknown_payment_is_none(store: PaymentStore) -> None:
    """Asking for a payment that was never seen returns None."""
    assert await store.get(str(uuid.uuid4())) is None


# ---- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-row", "retrying-row"])
async def test_concurrent_claims_let_exactly_one_owner_through(
    db_url: str, engine: AsyncEngine, existing: bool, fast_path: bool
) -> None:
    """Twenty workers racing, each on its own connection, for one payment: exactly one wins."""
    request = make_request()
    store = SqlPaymentStore(engine, fast_path=fast_path)
    if existing:
        await store.claim(request, "w0", LEASE, reopen=False)
        await store.record(
            AttemptOutcome(request.key, "w0", attempt(), PaymentStatus.RETRYING, error=BUSY)
        )
    engines = [make_engine(db_url, pool_size=1) for _ in range(20)]
    try:
        stores = [SqlPaymentStore(e, fast_path=fast_path) for e in engines]
        # Open every connection first so the claims themselves race, not the connects.
        for s in stores:
            await s.get(request.key)
        results: list[ClaimResult] = await asyncio.gather(
            *(s.claim(request, f"racer-{i}", LEASE, reopen=False) for i, s in enumerate(stores))
        )
    finally:
        for e in engines:
            await e.dispose()
    claimed = [r for r in results if isinstance(r, Claimed)]
    assert len(claimed) == 1
    assert all(isinstance(r, HeldElsewhere) for r in results if not isinstance(r, Claimed))


async def test_concurrent_claims_through_one_batching_store_let_one_owner_through(
    engine: AsyncEngine, fast_path: bool
) -> None:
    """Copies of one payment batched into the same transaction still yield a single claim."""
    store = BatchingStore(SqlPaymentStore(engine, fast_path=fast_path))
    request = make_request()
    results = await asyncio.gather(
        *(store.claim(request, f"copy-{i}", LEASE, reopen=False) for i in range(20))
    )
    assert sum(isinstance(r, Claimed) for r in results) == 1
    assert all(isinstance(r, Claimed | HeldElsewhere) for r in results)


class CountingWriter:
    """A ``BatchWriter`` that notes the size of each batch of outcomes it passes on."""

    def __init__(self, inner: BatchWriter) -> None:
        self.inner = inner
        self.record_batches: list[int] = []

    async def claim_many(self, batch: ClaimBatch) -> None:
        await self.inner.claim_many(batch)

    async def record_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[PaymentSnapshot]:
        self.record_batches.append(len(outcomes))
        return await self.inner.record_many(outcomes, now)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_outcomes_of_concurrent_payments_share_a_commit(
    engine: AsyncEngine, fast_path: bool
) -> None:
    """Payments in flight together commit their outcomes in one transaction, not one each,
    and every caller still gets back its own payment as stored."""
    writer = CountingWriter(batch_writer(engine, fast_path))
    store = BatchingStore(SqlPaymentStore(engine, writer=writer))
    requests = [make_request() for _ in range(50)]
    await asyncio.gather(*(store.claim(r, "w1", LEASE, reopen=False) for r in requests))
    snapshots = await asyncio.gather(
        *(
            store.record(
                AttemptOutcome(r.key, "w1", attempt(), PaymentStatus.SUCCEEDED, charge_id=f"ch_{i}")
            )
            for i, r in enumerate(requests)
        )
    )
    assert [(s.payment_id, s.gateway_charge_id) for s in snapshots] == [
        (r.key, f"ch_{i}") for i, r in enumerate(requests)
    ]
    assert sum(writer.record_batches) == 50
    assert len(writer.record_batches) <= 2
    await writer.aclose()


async def test_concurrent_batches_in_opposite_orders_do_not_deadlock(
    db_url: str, engine: AsyncEngine, fast_path: bool
) -> None:
    """Two workers claiming the same payments in reverse order both finish, one claim each."""
    engines = [make_engine(db_url, pool_size=1) for _ in range(2)]
    try:
        first, second = (SqlPaymentStore(e, fast_path=fast_path) for e in engines)
        for _ in range(5):
            requests = [make_request() for _ in range(100)]
            forward = [ClaimItem(r, "w1", -1.0, False) for r in requests]
            backward = [ClaimItem(r, "w2", -1.0, False) for r in reversed(requests)]
            a, b = await asyncio.gather(first.claim_many(forward), second.claim_many(backward))
            # Expired leases (-1 s) let both claim every payment, one after the other.
            assert all(isinstance(r, Claimed) for r in a + b)
            attempts = sorted(r.attempts for r in a + b if isinstance(r, Claimed))
            assert attempts == [1] * 100 + [2] * 100
    finally:
        for e in engines:
            await e.dispose()


@pytest.mark.postgres
async def test_a_deadlocked_transaction_is_store_unavailable(pg_url: str) -> None:
    """PostgreSQL aborting a transaction as a deadlock victim is retryable, not a crash."""
    engines = [make_engine(pg_url, pool_size=1) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            await conn.execute(text("CREATE TABLE lock_probe (id int PRIMARY KEY, v int)"))
            await conn.execute(text("INSERT INTO lock_probe VALUES (1, 0), (2, 0)"))
        both_locked = asyncio.Barrier(2)
        bump = text("UPDATE lock_probe SET v = v + 1 WHERE id = :id")

        async def cross(store: SqlPaymentStore, first: int, second: int) -> None:
            async with store._tx() as conn:
                await conn.execute(bump, {"id": first})
                await both_locked.wait()
                await conn.execute(bump, {"id": second})

        a, b = (SqlPaymentStore(e) for e in engines)
        results = await asyncio.gather(cross(a, 1, 2), cross(b, 2, 1), return_exceptions=True)
    finally:
        async with engines[0].begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS lock_probe"))
        for e in engines:
            await e.dispose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], StoreUnavailable)


# ---- outages ---------------------------------------------------------------------------------


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_unreachable_database_raises_store_unavailable(kind: str, tmp_path: Path) -> None:
    """A database that cannot be opened is StoreUnavailable, so the message waits unacked."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'store.db'}"
    else:
        url = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    before = set(threading.enumerate())
    engine = make_engine(url)
    try:
        store = SqlPaymentStore(engine)
        with pytest.raises(StoreUnavailable):
            await store.claim(make_request(), "w1", LEASE, reopen=False)
        with pytest.raises(StoreUnavailable):
            await store.get(str(uuid.uuid4()))
    finally:
        await engine.dispose()
        # aiosqlite stops the worker thread of a failed connect without awaiting it: let the
        # threads finish while this loop still runs, or they report to a closed loop.
        started = [t for t in threading.enumerate() if t not in before]
        await asyncio.to_thread(join_all, started)


class FlakyStore:
    """A store that is down for its first ``failures`` calls, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def _maybe_fail(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("database is locked")

    async def claim(
        self, request: PaymentRequest, owner: str, lease_seconds: float, reopen: bool
    ) -> ClaimResult:
        await self._maybe_fail()
        return Claimed(attempts=1)

    async def record(self, outcome: AttemptOutcome) -> PaymentSnapshot:
        await self._maybe_fail()
        return PaymentSnapshot(
            outcome.payment_id, PaymentStatus.SUCCEEDED, 1, "ch_1", None, None, T0
        )

    async def mark_dead_lettered(
        self, payment_id: str, reason: ParkReason, error: ErrorInfo
    ) -> PaymentSnapshot | None:
        await self._maybe_fail()
        return None

    async def release(self, payment_id: str, owner: str) -> None:
        await self._maybe_fail()

    async def get(self, payment_id: str) -> PaymentSnapshot | None:
        await self._maybe_fail()
        return None


async def test_resilient_store_waits_out_a_short_outage() -> None:
    """Calls that hit an outage are retried until the database answers again."""
    inner = FlakyStore(failures=3)
    store = ResilientStore(inner, patience=10.0)
    assert await store.claim(make_request(), "w1", LEASE, reopen=False) == Claimed(attempts=1)
    assert inner.calls == 4
    snapshot = await store.record(AttemptOutcome("p", "w1", attempt(), PaymentStatus.SUCCEEDED))
    assert snapshot.gateway_charge_id == "ch_1"
    assert inner.calls == 5


async def test_resilient_store_gives_up_after_its_patience() -> None:
    """A database that stays down surfaces StoreUnavailable once the patience is spent."""
    inner = FlakyStore(failures=10_000)
    store = ResilientStore(inner, patience=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StoreUnavailable):
        await store.get("p")
    assert 0.2 <= loop.time() - started < 2.0
    assert 1 < inner.calls < 10


async def test_resilient_store_does_not_retry_other_errors() -> None:
    """A bug (any error but StoreUnavailable) is raised at once, not retried."""

    class Broken(FlakyStore):
        async def get(self, payment_id: str) -> PaymentSnapshot | None:
            self.calls += 1
            raise ValueError("bug")

    inner = Broken(failures=0)
    with pytest.raises(ValueError, match="bug"):
        await ResilientStore(inner, patience=10.0).get("p")
    assert inner.calls == 1


async def test_resilient_store_over_sql_recovers_when_the_database_appears(
    tmp_path: Path,
) -> None:
    """A SQLite file whose directory appears during the wait is used once it can be opened."""
    directory = tmp_path / "later"
    engine = make_engine(f"sqlite:///{directory / 'store.db'}")
    sql = SqlPaymentStore(engine)

    class CreatesDirectoryOnFirstFailure:
        def __init__(self) -> None:
            self.calls = 0

        async def get(self, payment_id: str) -> PaymentSnapshot | None:
            self.calls += 1
            try:
                return await sql.get(payment_id)
            except StoreUnavailable:
                directory.mkdir()
                await create_schema(engine)
                raise

    inner = CreatesDirectoryOnFirstFailure()
    try:
        result = await ResilientStore(inner, patience=10.0).get(str(uuid.uuid4()))  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert result is None
    assert inner.calls == 2
