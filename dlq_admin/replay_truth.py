"""Replay safety: never publish a payment the gateway may already have charged.

The gateway's ``Idempotency-Key`` is what makes a replay harmless, and it has limits:

* a payment whose outcome is ``unknown`` may have been charged: its replay is refused (409,
  nothing published) until a lookup settles it (the reconciler, or ``payproc reconcile``);
* the gateway forgets a key after ``PAYPROC_GATEWAY_IDEMPOTENCY_TTL`` (Stripe: 24 h). Past
  it a replay would be a fresh charge, so the gateway is asked first: no charge -> replay;
  charged -> the payment is settled as ``succeeded`` (its parked entries ``resolved``)
  instead of publishing; cannot say -> refused (409), never a blind replay.

``check`` raises ``Conflict`` to refuse and returns to allow; the service calls it after its
own "already final" check and before it claims the entry. ``bulk_skips`` is the same rule for
a batch of entries (a replay job's round, or its dry run): it names the entries to skip, why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from dlq_admin.errors import Conflict
from dlq_admin.reconciler import EventSink, announce
from dlq_admin.truth_store import Settled
from processor.ports import ChargeLookup
from retry.policy import LookupAnswer, LookupCharged, LookupNoCharge, LookupUnavailable
from schemas.outcome import ErrorInfo, PaymentStatus
from schemas.tables import utcnow

log = logging.getLogger("payproc.admin")

ReplayCheck = Callable[[str, str | None], Awaitable[None]]
"""``(payment_id, stored payment status or None)``: raise ``Conflict`` to refuse a replay."""
BatchSkipCheck = Callable[[Sequence[tuple[str, str]], bool], Awaitable[dict[str, str]]]
"""``((entry_id, payment_id)…, dry_run)`` -> ``{entry_id: why}``: the entries of a batch a
replay job (or its dry run) must skip."""
_LOOKUPS_IN_FLIGHT = 8


def refuse_unknown_now(payment_id: str, status: str | None) -> None:
    """The check that needs no gateway: an ``unknown`` payment is never replayed."""
    if status == PaymentStatus.UNKNOWN.value:
        raise Conflict(
            f"payment {payment_id} has an unknown outcome (the gateway may have charged it): "
            "it is not replayed until a lookup settles it (nothing was published)",
            "payment_unknown",
        )


async def refuse_unknown(payment_id: str, status: str | None) -> None:
    refuse_unknown_now(payment_id, status)


class AttemptTimes(Protocol):
    async def last_attempt_at(self, payment_id: str) -> datetime | None: ...

    async def last_attempts(self, payment_ids: Sequence[str]) -> dict[str, datetime]: ...

    async def settle_charged(self, payment_id: str, charge_id: str) -> Settled | None: ...


class ReplayTruth:
    """The full check: unknown refused, past the idempotency window looked up first."""

    def __init__(
        self,
        store: AttemptTimes,
        lookup: ChargeLookup,
        events: EventSink,
        idempotency_ttl: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.events = events
        self.ttl = timedelta(seconds=idempotency_ttl)
        self._clock = clock

    async def check(self, payment_id: str, status: str | None) -> None:
        refuse_unknown_now(payment_id, status)
        last = await self.store.last_attempt_at(payment_id)
        if last is None or self._clock() - last < self.ttl:
            return  # never charged, or the gateway still remembers the key: replay is safe
        answer = await self._look_up(payment_id)
        match answer:
            case LookupNoCharge():
                return
            case LookupUnavailable(error=error):
                raise Conflict(
                    f"payment {payment_id} was last sent to the gateway at {last.isoformat()}, "
                    "past the gateway's idempotency window, and the gateway cannot say now "
                    f"whether it charged ({error.code}): not replayed blind (nothing was "
                    "published); try again later",
                    "lookup_unavailable",
                )
            case LookupCharged(charge_id=charge_id):
                settled = await self.store.settle_charged(payment_id, charge_id)
                if settled is not None:
                    log.info(
                        "replay found the payment charged: settled as succeeded",
                        extra={"payment_id": payment_id},
                    )
                    await announce(self.events, settled)
                raise Conflict(
                    f"payment {payment_id} was charged at the gateway ({charge_id}): settled "
                    "as succeeded instead of replayed (nothing was published)",
                    "payment_charged",
                )

    async def bulk_skips(
        self, candidates: Sequence[tuple[str, str]], dry_run: bool
    ) -> dict[str, str]:
        """``{entry_id: why}`` for the ``(entry_id, payment_id)`` pairs a replay job must skip:
        past the idempotency window, a charge found (settled unless ``dry_run``:
        ``payment_charged``) or no answer (``lookup_unavailable``)."""
        if not candidates:
            return {}
        last = await self.store.last_attempts([pid for _, pid in candidates])
        stale_before = self._clock() - self.ttl
        stale = sorted({pid for pid, at in last.items() if at <= stale_before})
        if not stale:
            return {}
        limit = asyncio.Semaphore(_LOOKUPS_IN_FLIGHT)

        async def ask(payment_id: str) -> LookupAnswer:
            async with limit:
                return await self._look_up(payment_id)

        answers = dict(zip(stale, await asyncio.gather(*(ask(p) for p in stale)), strict=True))
        why: dict[str, str] = {}
        for payment_id, answer in answers.items():
            if isinstance(answer, LookupUnavailable):
                why[payment_id] = "lookup_unavailable"
            elif isinstance(answer, LookupCharged):
                why[payment_id] = "payment_charged"
                if not dry_run:
                    settled = await self.store.settle_charged(payment_id, answer.charge_id)
                    if settled is not None:
                        await announce(self.events, settled)
        return {entry: why[pid] for entry, pid in candidates if pid in why}

    async def _look_up(self, payment_id: str) -> LookupAnswer:
        try:
            return await self.lookup.lookup(payment_id)
        except Exception as exc:  # the port must not raise; if it does, nothing is known
            log.exception("charge lookup failed", extra={"payment_id": payment_id})
            return LookupUnavailable(ErrorInfo(code="lookup_failed", message=str(exc)[:200]))
