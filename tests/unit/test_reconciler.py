"""The reconciler's state machine and the replay truth check, over hand-written fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dlq_admin.errors import Conflict
from dlq_admin.reconciler import Reconciler
from dlq_admin.replay_truth import ReplayTruth, refuse_unknown
from dlq_admin.truth_store import Settled, UnknownPayment
from retry.policy import LookupAnswer, LookupCharged, LookupNoCharge, LookupUnavailable
from schemas.outcome import ErrorInfo, PaymentStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DOWN = LookupUnavailable(ErrorInfo(code="http_503", message="busy"))


@dataclass
class FakeTruthStore:
    status: dict[str, PaymentStatus] = field(default_factory=dict)
    charge: dict[str, str] = field(default_factory=dict)
    last_attempt: dict[str, datetime] = field(default_factory=dict)
    swept: int = 0

    async def unknown_payments(self, limit: int = 500) -> list[UnknownPayment]:
        ids = [p for p, s in self.status.items() if s is PaymentStatus.UNKNOWN]
        return [UnknownPayment(p, T0) for p in ids[:limit]]

    def _settled(self, payment_id: str) -> Settled:
        return Settled(
            payment_id, self.status[payment_id], 3, self.charge.get(payment_id), None, T0, 1
        )

    async def settle_charged(self, payment_id: str, charge_id: str) -> Settled | None:
        if self.status.get(payment_id) not in (
            PaymentStatus.UNKNOWN,
            PaymentStatus.DEAD_LETTERED,
        ):
            return None
        self.status[payment_id] = PaymentStatus.SUCCEEDED
        self.charge[payment_id] = charge_id
        return self._settled(payment_id)

    async def settle_not_charged(self, payment_id: str) -> Settled | None:
        if self.status.get(payment_id) is not PaymentStatus.UNKNOWN:
            return None
        self.status[payment_id] = PaymentStatus.DEAD_LETTERED
        return self._settled(payment_id)

    async def sweep_entries(self) -> int:
        self.swept += 1
        return 0

    async def last_attempt_at(self, payment_id: str) -> datetime | None:
        return self.last_attempt.get(payment_id)

    async def last_attempts(self, payment_ids: Any) -> dict[str, datetime]:
        return {p: self.last_attempt[p] for p in payment_ids if p in self.last_attempt}


@dataclass
class ScriptedLookup:
    answers: dict[str, list[LookupAnswer]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def lookup(self, payment_id: str) -> LookupAnswer:
        self.asked.append(payment_id)
        script = self.answers.get(payment_id, [])
        return script.pop(0) if script else DOWN


@dataclass
class Events:
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    replies: list[tuple[str, str | None]] = field(default_factory=list)

    async def publish_event(self, routing_key: str, body: dict[str, Any]) -> None:
        self.sent.append((routing_key, body))

    async def publish_reply(
        self, reply_to: str, correlation_id: str | None, body: dict[str, Any]
    ) -> None:
        self.replies.append((reply_to, correlation_id))


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts() -> tuple[FakeTruthStore, ScriptedLookup, Events, Clock, Reconciler]:
    store, lookup, events, clock = FakeTruthStore(), ScriptedLookup(), Events(), Clock()
    reconciler = Reconciler(store, lookup, events, first_delay=5, max_delay=20, clock=clock)
    return store, lookup, events, clock, reconciler


async def test_charged_unknown_payment_becomes_succeeded_and_is_announced_reconciled(
    parts: Any,
) -> None:
    store, lookup, events, _clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN
    lookup.answers["p1"] = [LookupCharged("ch_1")]

    report = await reconciler.run_once()

    assert report.charged == ["p1"]
    assert store.status["p1"] is PaymentStatus.SUCCEEDED
    assert store.charge["p1"] == "ch_1"
    [(key, body)] = events.sent
    assert key == "payment.succeeded"
    assert body["reconciled"] is True
    assert body["gateway_charge_id"] == "ch_1"
    assert store.swept == 1


async def test_uncharged_unknown_payment_is_parked_and_announced(parts: Any) -> None:
    store, lookup, events, _clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN
    lookup.answers["p1"] = [LookupNoCharge()]

    report = await reconciler.run_once()

    assert report.not_charged == ["p1"]
    assert store.status["p1"] is PaymentStatus.DEAD_LETTERED
    assert [key for key, _ in events.sent] == ["payment.dead_lettered"]


async def test_cannot_say_backs_off_doubling_up_to_the_cap(parts: Any) -> None:
    """Unavailable lookups wait 5, 10, 20, 20 s; nothing is announced meanwhile."""
    store, lookup, events, clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN
    waits = []
    for _ in range(4):
        report = await reconciler.run_once()
        assert report.still_unknown == ["p1"]
        next_at = reconciler.next_check("p1")
        assert next_at is not None
        waits.append(next_at - clock.now)
        # not due yet: a pass in between does not ask the gateway
        asked = len(lookup.asked)
        await reconciler.run_once()
        assert len(lookup.asked) == asked
        clock.now = next_at
    assert waits == [5, 10, 20, 20]
    assert events.sent == []
    assert store.status["p1"] is PaymentStatus.UNKNOWN


async def test_settles_once_the_gateway_answers_again(parts: Any) -> None:
    store, lookup, events, clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN
    lookup.answers["p1"] = [DOWN, DOWN, LookupCharged("ch_9")]
    for _ in range(3):
        await reconciler.run_once()
        clock.now += 60
    assert store.status["p1"] is PaymentStatus.SUCCEEDED
    assert reconciler.next_check("p1") is None
    assert [key for key, _ in events.sent] == ["payment.succeeded"]


async def test_everything_ignores_the_back_off(parts: Any) -> None:
    store, lookup, _events, _clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN
    await reconciler.run_once()
    await reconciler.run_once(everything=True)
    assert lookup.asked == ["p1", "p1"]


async def test_a_payment_settled_elsewhere_is_not_announced_twice(parts: Any) -> None:
    """The store's status guard decides the race: only the winner announces."""
    store, lookup, events, _clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN

    async def racing(payment_id: str) -> LookupAnswer:
        store.status[payment_id] = PaymentStatus.SUCCEEDED  # a redelivery won meanwhile
        return LookupCharged("ch_1")

    lookup.lookup = racing  # type: ignore[method-assign]
    report = await reconciler.run_once()
    assert report.charged == []
    assert events.sent == []


async def test_a_raising_lookup_is_treated_as_cannot_say(parts: Any) -> None:
    store, lookup, _events, _clock, reconciler = parts
    store.status["p1"] = PaymentStatus.UNKNOWN

    async def broken(payment_id: str) -> LookupAnswer:
        raise RuntimeError("bug")

    lookup.lookup = broken  # type: ignore[method-assign]
    report = await reconciler.run_once()
    assert report.still_unknown == ["p1"]


# ---- replay truth ---------------------------------------------------------------------------


def truth(store: FakeTruthStore, lookup: ScriptedLookup, events: Events) -> ReplayTruth:
    return ReplayTruth(store, lookup, events, idempotency_ttl=3600, clock=lambda: T0)


async def test_unknown_payment_is_never_replayed_and_the_gateway_is_not_asked() -> None:
    store, lookup, events = FakeTruthStore(), ScriptedLookup(), Events()
    with pytest.raises(Conflict) as caught:
        await truth(store, lookup, events).check("p1", "unknown")
    assert caught.value.code == "payment_unknown"
    assert lookup.asked == []
    with pytest.raises(Conflict):
        await refuse_unknown("p1", "unknown")
    await refuse_unknown("p1", "dead_lettered")


async def test_within_the_idempotency_window_a_replay_needs_no_lookup() -> None:
    store, lookup, events = FakeTruthStore(), ScriptedLookup(), Events()
    store.last_attempt["p1"] = T0 - timedelta(minutes=59)
    await truth(store, lookup, events).check("p1", "dead_lettered")
    await truth(store, lookup, events).check("never-tried", None)
    assert lookup.asked == []


async def test_past_the_window_a_lookup_decides() -> None:
    """No charge: replay. Cannot say: refused. Charged: settled, not replayed."""
    store, lookup, events = FakeTruthStore(), ScriptedLookup(), Events()
    for pid in ("none", "down", "charged"):
        store.last_attempt[pid] = T0 - timedelta(hours=2)
        store.status[pid] = PaymentStatus.DEAD_LETTERED
    lookup.answers = {"none": [LookupNoCharge()], "charged": [LookupCharged("ch_7")]}
    check = truth(store, lookup, events).check

    await check("none", "dead_lettered")
    with pytest.raises(Conflict) as down:
        await check("down", "dead_lettered")
    assert down.value.code == "lookup_unavailable"
    with pytest.raises(Conflict) as charged:
        await check("charged", "dead_lettered")
    assert charged.value.code == "payment_charged"
    assert store.status["charged"] is PaymentStatus.SUCCEEDED
    assert [key for key, _ in events.sent] == ["payment.succeeded"]
    assert lookup.asked == ["none", "down", "charged"]


async def test_bulk_skips_only_stale_payments_the_gateway_cannot_clear() -> None:
    """Fresh or never-tried: kept without a lookup. Stale: no charge kept, cannot say skipped,
    charged skipped (and settled, except in a dry run)."""
    store, lookup, events = FakeTruthStore(), ScriptedLookup(), Events()
    store.last_attempt = {
        "fresh": T0 - timedelta(minutes=1),
        "none": T0 - timedelta(hours=2),
        "down": T0 - timedelta(hours=2),
        "charged": T0 - timedelta(hours=2),
    }
    store.status["charged"] = PaymentStatus.DEAD_LETTERED
    pairs = [("e1", "fresh"), ("e2", "none"), ("e3", "down"), ("e4", "charged"), ("e5", "new")]
    lookup.answers = {"none": [LookupNoCharge()], "charged": [LookupCharged("ch_3")] * 2}
    check = truth(store, lookup, events)

    dry = await check.bulk_skips(pairs, dry_run=True)
    assert dry == {"e3": "lookup_unavailable", "e4": "payment_charged"}
    assert store.status["charged"] is PaymentStatus.DEAD_LETTERED
    assert sorted(lookup.asked) == ["charged", "down", "none"]

    lookup.answers["none"] = [LookupNoCharge()]
    real = await check.bulk_skips(pairs, dry_run=False)
    assert real == dry
    assert store.status["charged"] is PaymentStatus.SUCCEEDED
    assert [key for key, _ in events.sent] == ["payment.succeeded"]
