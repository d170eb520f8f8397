"""Reads of the worker's tables (``payments``, ``payment_attempts``) and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from dlq_admin.ports import AuditRecord
from dlq_admin.rows import AttemptRecord, AuditRow, PaymentRecord
from dlq_admin.store._base import SqlBase, attempts, audit_log, payments
from schemas.tables import utcnow

_PAYMENT_FIELDS = tuple(PaymentRecord.__dataclass_fields__)
_ATTEMPT_FIELDS = tuple(AttemptRecord.__dataclass_fields__)
_AUDIT_FIELDS = tuple(AuditRow.__dataclass_fields__)


class SqlPayments(SqlBase):
    """``PaymentReader`` over SQLAlchemy: the admin reads, never writes, these tables."""

    async def payment(self, payment_id: str) -> PaymentRecord | None:
        columns = [payments.c[name] for name in _PAYMENT_FIELDS]
        async with self._tx() as conn:
            row = (
                await conn.execute(select(*columns).where(payments.c.payment_id == payment_id))
            ).first()
        if row is None:
            return None
        return PaymentRecord(**{name: row._mapping[name] for name in _PAYMENT_FIELDS})

    async def payment_statuses(self, payment_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(payment_ids))
        async with self._tx() as conn:
            for start in range(0, len(unique), 500):
                rows = await conn.execute(
                    select(payments.c.payment_id, payments.c.status).where(
                        payments.c.payment_id.in_(unique[start : start + 500])
                    )
                )
                found.update({str(r[0]): str(r[1]) for r in rows})
        return found

    async def attempts(self, payment_id: str) -> list[AttemptRecord]:
        a = attempts.c
        async with self._tx() as conn:
            rows = await conn.execute(
                select(*(a[name] for name in _ATTEMPT_FIELDS))
                .where(a.payment_id == payment_id)
                .order_by(a.started_at, a.id)
                .limit(500)
            )
            return [
                AttemptRecord(**{name: row._mapping[name] for name in _ATTEMPT_FIELDS})
                for row in rows
            ]


class SqlAudit(SqlBase):
    """``AuditStore`` over SQLAlchemy."""

    async def add_audit(self, record: AuditRecord) -> None:
        async with self._tx() as conn:
            await conn.execute(
                audit_log.insert().values(
                    namespace=self._ns,
                    at=utcnow(),
                    actor=record.actor,
                    role=record.role,
                    action=record.action[:64],
                    target=record.target[:500] if record.target else None,
                    outcome=record.outcome[:32],
                    status_code=record.status_code,
                    detail=record.detail,
                    client=record.client[:100] if record.client else None,
                )
            )

    async def list_audit(
        self,
        limit: int,
        before_id: int | None,
        actor: str | None,
        action: str | None,
        outcome: str | None,
    ) -> list[AuditRow]:
        a = audit_log.c
        conditions: list[Any] = [a.namespace == self._ns]
        if before_id is not None:
            conditions.append(a.id < before_id)
        if actor is not None:
            conditions.append(a.actor == actor)
        if action is not None:
            conditions.append(a.action == action)
        if outcome is not None:
            conditions.append(a.outcome == outcome)
        columns = [a[name] for name in _AUDIT_FIELDS]
        async with self._tx() as conn:
            rows = await conn.execute(
                select(*columns).where(*conditions).order_by(a.id.desc()).limit(limit)
            )
            return [
                AuditRow(**{name: row._mapping[name] for name in _AUDIT_FIELDS}) for row in rows
            ]
