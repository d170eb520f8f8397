"""The reconciler: settles ``unknown`` payments by asking the gateway, on a back-off.

A payment is ``unknown`` when its last attempt's answer was lost and the worker's own lookup
could not tell whether the gateway charged. Each pass of the reconciler:

1. repairs DLQ entries whose payment was settled elsewhere (``sweep_entries``);
2. looks up every ``unknown`` payment that is due, oldest first:
   charged -> ``succeeded`` (charge id stored), its DLQ entry ``resolved``, event
   ``payment.succeeded`` with ``"reconciled": true``; not charged -> ``dead_lettered``
   (``retries_exhausted``), its DLQ entry replayable, event ``payment.dead_lettered``
   (reconciled); cannot say -> checked again after a delay that doubles from
   ``first_delay`` up to ``max_delay``.

Events go out after the settlement is committed (best effort, like ``payment.replayed``):
the database is the authority, an event is never sent for a state that was not stored.
It runs inside ``payproc admin`` (``run``) and once via ``payproc reconcile`` (``run_once``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dlq_admin.truth_store import Settled, UnknownPayment
from processor.ports import ChargeLookup
from retry.policy import Hold, LookupUnavailable, Park, Succeed, settle
from schemas.outcome import ErrorInfo, PaymentResult, PaymentStatus

log = logging.getLogger("payproc.reconciler")

_DOUBT = ErrorInfo(code="outcome_unknown", message="the gateway's answer was lost")


class TruthStore(Protocol):
    async def unknown_payments(self, limit: int = 500) -> list[UnknownPayment]: ...

    async def settle_charged(self, payment_id: str, charge_id: str) -> Settled | None: ...

    async def settle_not_charged(self, payment_id: str) -> Settled | None: ...

    async def sweep_entries(self) -> int: ...


class EventSink(Protocol):
    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None: ...

    async def publish_reply(
        self, reply_to: str, correlation_id: str | None, body: dict[str, Any]
    ) -> None: ...


def settled_event(settled: Settled) -> tuple[str, dict[str, Any]]:
    """The routing key and body announcing a settlement (``"reconciled": true``)."""
    result = PaymentResult(
        payment_id=settled.payment_id,
        status=settled.status,
        attempts=settled.attempts,
        gateway_charge_id=settled.charge_id,
        error=None if settled.status is PaymentStatus.SUCCEEDED else settled.error,
        processed_at=settled.updated_at,
        reconciled=True,
    )
    return f"payment.{settled.status.value}", result.model_dump(mode="json")


async def announce(events: EventSink, settled: Settled) -> None:
    """The event, and the reply a synchronous caller may still be waiting for."""
    routing_key, body = settled_event(settled)
    try:
        await events.publish_event(routing_key, body)
    except Exception as exc:  # the settlement is stored; events are best effort here
        log.warning("%s event not published for %s: %s", routing_key, settled.payment_id, exc)
    if settled.reply_to:
        try:
            await events.publish_reply(settled.reply_to, settled.correlation_id, body)
        except Exception as exc:
            log.warning("settled reply not sent for %s: %s", settled.payment_id, exc)


@dataclass
class ReconcileReport:
    charged: list[str] = field(default_factory=list)
    not_charged: list[str] = field(default_factory=list)
    still_unknown: list[str] = field(default_factory=list)
    entries_repaired: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "charged": self.charged,
            "not_charged": self.not_charged,
            "still_unknown": self.still_unknown,
            "entries_repaired": self.entries_repaired,
        }


@dataclass
class _Wait:
    next_at: float
    delay: float


class Reconciler:
    def __init__(
        self,
        store: TruthStore,
        lookup: ChargeLookup,
        events: EventSink,
        *,
        first_delay: float = 5.0,
        max_delay: float = 300.0,
        batch: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.lookup = lookup
        self.events = events
        self.first_delay = first_delay
        self.max_delay = max(max_delay, first_delay)
        self.batch = batch
        self._clock = clock
        self._waits: dict[str, _Wait] = {}
        self.wake = asyncio.Event()
        """Set to start the next pass at once (a test, or an operator's nudge)."""

    def next_check(self, payment_id: str) -> float | None:
        """When (on the reconciler's clock) ``payment_id`` is looked up again, if waiting."""
        wait = self._waits.get(payment_id)
        return wait.next_at if wait is not None else None

    async def run_once(self, *, everything: bool = False) -> ReconcileReport:
        """One pass; ``everything`` ignores the back-off (``payproc reconcile``)."""
        report = ReconcileReport(entries_repaired=await self.store.sweep_entries())
        unknown = await self.store.unknown_payments(self.batch)
        current = {p.payment_id for p in unknown}
        for gone in set(self._waits) - current:
            del self._waits[gone]
        now = self._clock()
        for payment in unknown:
            wait = self._waits.get(payment.payment_id)
            if not everything and wait is not None and wait.next_at > now:
                continue
            await self._reconcile(payment, report)
        return report

    async def _reconcile(self, payment: UnknownPayment, report: ReconcileReport) -> None:
        payment_id = payment.payment_id
        try:
            answer = await self.lookup.lookup(payment_id)
        except Exception as exc:  # the port must not raise; if it does, nothing is known
            log.exception("charge lookup failed", extra={"payment_id": payment_id})
            answer = LookupUnavailable(ErrorInfo(code="lookup_failed", message=str(exc)[:200]))
        match settle(answer, _DOUBT):
            case Succeed(charge_id=charge_id):
                settled = await self.store.settle_charged(payment_id, charge_id)
                self._waits.pop(payment_id, None)
                if settled is not None:
                    report.charged.append(payment_id)
                    log.info("unknown payment was charged: succeeded", extra=_extra(payment))
                    await announce(self.events, settled)
            case Park():
                settled = await self.store.settle_not_charged(payment_id)
                self._waits.pop(payment_id, None)
                if settled is not None:
                    report.not_charged.append(payment_id)
                    log.info("unknown payment was not charged: parked", extra=_extra(payment))
                    await announce(self.events, settled)
            case Hold():
                report.still_unknown.append(payment_id)
                self._back_off(payment_id)

    def _back_off(self, payment_id: str) -> None:
        wait = self._waits.get(payment_id)
        delay = self.first_delay if wait is None else min(wait.delay * 2, self.max_delay)
        self._waits[payment_id] = _Wait(self._clock() + delay, delay)

    async def run(self, stop: asyncio.Event, interval: float) -> None:
        """Pass after pass, ``interval`` seconds apart, until ``stop`` is set."""
        while not stop.is_set():
            try:
                report = await self.run_once()
                if report.still_unknown:
                    log.warning(
                        "%d payment(s) still unknown: the gateway cannot say yet",
                        len(report.still_unknown),
                    )
            except Exception:
                log.exception("reconciler pass failed; trying again later")
            self.wake.clear()
            waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())}
            try:
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()


def _extra(payment: UnknownPayment) -> dict[str, Any]:
    since: datetime = payment.since
    return {"payment_id": payment.payment_id, "unknown_since": since.isoformat()}
