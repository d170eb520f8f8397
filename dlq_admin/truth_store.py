"""The SQL behind outcome truth: ``unknown`` payments, settling them, their DLQ entries.

Settling is one transaction over both tables, guarded by the payment's status, so a payment
is settled once whoever races (two reconcilers, a replay, a worker's redelivery):

* charged: the payment ``-> succeeded`` with the gateway's charge id; its parked DLQ entries
  ``-> resolved`` (nothing left to replay);
* not charged: an ``unknown`` payment ``-> dead_lettered`` (``retries_exhausted``); its parked
  ``outcome_unknown`` entries become ``retries_exhausted`` entries, replayable as any other.

``sweep_entries`` repairs the entries of payments settled before their DLQ message was
ingested (or settled by a worker's redelivery): an ``outcome_unknown`` entry is only
meaningful while its payment is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dlq_admin.errors import Unavailable
from processor.db import transaction
from schemas.dlq import EntryStatus
from schemas.dlq_tables import DlqEntryRow
from schemas.outcome import ErrorInfo, ParkReason, PaymentStatus
from schemas.tables import PaymentAttemptRow, PaymentRow, last_error_of, utcnow

_entries = DlqEntryRow.__table__  # type: ignore[attr-defined]
_payments = PaymentRow.__table__  # type: ignore[attr-defined]
_attempts = PaymentAttemptRow.__table__  # type: ignore[attr-defined]

_UNKNOWN = PaymentStatus.UNKNOWN.value
_SETTLEABLE = (PaymentStatus.UNKNOWN.value, PaymentStatus.DEAD_LETTERED.value)
"""Statuses a charge found at the gateway may overrule: neither is a charge we announced."""


@dataclass(frozen=True, slots=True)
class UnknownPayment:
    payment_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Settled:
    """A payment as it stands after this call settled it."""

    payment_id: str
    status: PaymentStatus
    attempts: int
    charge_id: str | None
    error: ErrorInfo | None
    updated_at: datetime
    entries: int
    """DLQ entries this settlement changed."""
    reply_to: str | None = None
    """Where the original request asked for its result (a caller may still wait there)."""
    correlation_id: str | None = None


def _unavailable(reason: str) -> Unavailable:
    return Unavailable(f"database unavailable: {reason.split(':', 1)[0]}")


class SqlTruthStore:
    def __init__(self, engine: AsyncEngine, namespace: str) -> None:
        self._engine = engine
        self._ns = namespace

    def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine, _unavailable)

    async def unknown_payments(self, limit: int = 500) -> list[UnknownPayment]:
        """The ``unknown`` payments, longest unknown first."""
        p = _payments.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(p.payment_id, p.updated_at)
                .where(p.status == _UNKNOWN)
                .order_by(p.updated_at, p.payment_id)
                .limit(limit)
            )
            return [UnknownPayment(str(r[0]), r[1]) for r in rows]

    async def unknown_counts(self) -> tuple[int, datetime | None]:
        """How many payments are ``unknown`` and since when the oldest one is."""
        p = _payments.c
        async with self._tx() as conn:
            count = (
                await conn.execute(select(func.count()).where(p.status == _UNKNOWN))
            ).scalar_one()
            oldest = (
                await conn.execute(
                    select(p.updated_at).where(p.status == _UNKNOWN).order_by(p.updated_at).limit(1)
                )
            ).scalar()
        return int(count), oldest

    async def last_attempt_at(self, payment_id: str) -> datetime | None:
        """When the payment's latest gateway attempt finished (None: never attempted)."""
        a = _attempts.c
        async with self._tx() as conn:
            return (
                await conn.execute(
                    select(a.finished_at)
                    .where(a.payment_id == payment_id)
                    .order_by(a.finished_at.desc())
                    .limit(1)
                )
            ).scalar()

    async def last_attempts(self, payment_ids: Sequence[str]) -> dict[str, datetime]:
        """When each payment's latest gateway attempt finished (payments never tried: absent)."""
        a = _attempts.c
        found: dict[str, datetime] = {}
        unique = list(dict.fromkeys(payment_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), 500):
                rows = await conn.execute(
                    select(a.payment_id, func.max(a.finished_at))
                    .where(a.payment_id.in_(unique[start : start + 500]))
                    .group_by(a.payment_id)
                )
                for payment_id, value in rows:
                    if value is not None:
                        found[str(payment_id)] = self._when(value)
        return found

    def _when(self, value: Any) -> datetime:
        # max() loses the column type on SQLite: reparse the stored UTC text.
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        result: datetime = _attempts.c.finished_at.type.process_result_value(
            value, self._engine.dialect
        )
        return result

    async def settle_charged(self, payment_id: str, charge_id: str) -> Settled | None:
        """``unknown``/``dead_lettered`` -> ``succeeded``; parked entries -> ``resolved``.

        None when the payment is not in a settleable status any more (already settled)."""
        now = utcnow()
        p, e = _payments.c, _entries.c
        async with self._tx() as conn:
            changed = await conn.execute(
                update(_payments)
                .where(p.payment_id == payment_id, p.status.in_(_SETTLEABLE))
                .values(
                    status=PaymentStatus.SUCCEEDED.value,
                    gateway_charge_id=charge_id,
                    last_error_code=None,
                    last_error_message=None,
                    dead_letter_reason=None,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if changed.rowcount != 1:
                return None
            resolved = await conn.execute(
                update(_entries)
                .where(
                    e.namespace == self._ns,
                    e.payment_id == payment_id,
                    e.status == EntryStatus.PARKED.value,
                )
                .values(status=EntryStatus.RESOLVED.value, updated_at=now)
            )
            return await self._settled(conn, payment_id, resolved.rowcount)

    async def settle_not_charged(self, payment_id: str) -> Settled | None:
        """``unknown`` -> ``dead_lettered`` (retries_exhausted); its entries turn replayable."""
        now = utcnow()
        p = _payments.c
        async with self._tx() as conn:
            changed = await conn.execute(
                update(_payments)
                .where(p.payment_id == payment_id, p.status == _UNKNOWN)
                .values(
                    status=PaymentStatus.DEAD_LETTERED.value,
                    dead_letter_reason=ParkReason.RETRIES_EXHAUSTED.value,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if changed.rowcount != 1:
                return None
            count = await self._make_replayable(conn, [payment_id], now)
            return await self._settled(conn, payment_id, count)

    async def sweep_entries(self) -> int:
        """Settle parked ``outcome_unknown`` entries whose payment is no longer ``unknown``."""
        now = utcnow()
        e, p = _entries.c, _payments.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(e.payment_id, p.status)
                .select_from(_entries.join(_payments, p.payment_id == e.payment_id))
                .where(
                    e.namespace == self._ns,
                    e.status == EntryStatus.PARKED.value,
                    e.reason == ParkReason.OUTCOME_UNKNOWN.value,
                    p.status != _UNKNOWN,
                )
                .limit(500)
            )
            by_status: dict[str, list[str]] = {}
            for payment_id, status in rows:
                by_status.setdefault(str(status), []).append(str(payment_id))
            charged = by_status.pop(PaymentStatus.SUCCEEDED.value, [])
            changed = 0
            if charged:
                result = await conn.execute(
                    update(_entries)
                    .where(
                        e.namespace == self._ns,
                        e.payment_id.in_(charged),
                        e.status == EntryStatus.PARKED.value,
                    )
                    .values(status=EntryStatus.RESOLVED.value, updated_at=now)
                )
                changed += result.rowcount
            rest = [pid for ids in by_status.values() for pid in ids]
            if rest:
                changed += await self._make_replayable(conn, rest, now)
            return changed

    async def _make_replayable(
        self, conn: AsyncConnection, payment_ids: Sequence[str], now: datetime
    ) -> int:
        e = _entries.c
        old = ParkReason.OUTCOME_UNKNOWN.value
        new = ParkReason.RETRIES_EXHAUSTED.value
        rows = await conn.execute(
            select(e.id, e.fingerprint).where(
                e.namespace == self._ns,
                e.payment_id.in_(list(payment_ids)),
                e.status == EntryStatus.PARKED.value,
                e.reason == old,
            )
        )
        found = rows.all()
        for entry_id, fingerprint in found:
            await conn.execute(
                update(_entries)
                .where(and_(e.id == entry_id, e.reason == old))
                .values(
                    reason=new,
                    fingerprint=new + str(fingerprint).removeprefix(old),
                    updated_at=now,
                )
            )
        return len(found)

    async def _settled(self, conn: AsyncConnection, payment_id: str, entries: int) -> Settled:
        row = (
            await conn.execute(select(_payments).where(_payments.c.payment_id == payment_id))
        ).first()
        assert row is not None
        values: Any = row._mapping
        e = _entries.c
        reply = (
            await conn.execute(
                select(e.reply_to, e.correlation_id)
                .where(e.namespace == self._ns, e.payment_id == payment_id, e.reply_to.is_not(None))
                .order_by(e.dead_lettered_at.desc())
                .limit(1)
            )
        ).first()
        return Settled(
            payment_id=payment_id,
            status=PaymentStatus(values["status"]),
            attempts=int(values["attempts"]),
            charge_id=values["gateway_charge_id"],
            error=last_error_of(values),
            updated_at=values["updated_at"],
            entries=entries,
            reply_to=reply[0] if reply is not None else None,
            correlation_id=reply[1] if reply is not None else None,
        )
