"""The gateway circuit breaker: a pure state machine (no I/O) that judges the *gateway*.

A fault that follows a few payments (or one merchant) must not look like an outage, so the
breaker does not count answers, it counts *payments*:

* **Evidence per distinct payment.** The window keeps the latest answer of each payment seen
  in the last ``window_seconds`` (at most ``window_payments`` of them). A payment that fails
  on every attempt counts once, however often its retry copies come back.
* **Minimum number of payments** (resilience4j's ``minimumNumberOfCalls``): the failure share
  is judged only once ``min_payments`` distinct payments are in the window. Ten payments that
  always fail, alone on a quiet night, are not enough evidence.
* **Across merchants, where traffic allows.** When the window holds payments of at least
  ``min_merchants`` merchants, the failing payments must span ``min_merchants`` merchants.
* **Merchant isolation.** A merchant whose payments nearly all fail while another merchant's
  succeed is *isolated*: its payments are left out of the evidence, and its failures are never
  spared (they walk their ladder and park as ``retries_exhausted``). It is released when
  fewer than ``merchant_release_share`` of its payments fail (hysteresis), when its failing
  payments drop under ``merchant_min_payments``, or as long as no other merchant succeeds.
* **Probes that move on.** Half-open, the worker lets messages through one at a time. A
  transient answer from a payment already known to fail (seen failing before the circuit
  opened, or a failed probe earlier in this episode) or from an isolated merchant says
  nothing about the gateway: the circuit stays half-open and the next message is probed,
  while that payment's failure is *not* spared (it walks its ladder, so payments that always
  fail cannot keep the circuit probing forever). A success closes the circuit; a transient
  answer from a fresh payment re-opens it with a doubled cool-down (capped at
  ``max_cooldown``).
* **A bounded hold.** While the circuit is not closed, transient failures are *spared* (they
  do not spend the payment's attempt budget), so an outage cannot park the backlog. After
  ``max_hold`` seconds of one episode the sparing stops: attempts count again, and every
  payment ends final or visibly waiting in its queue.

Answers the worker should not feed here: 429 (a rate limit says nothing about health; the
rate limiter handles it).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerRules:
    """The breaker's thresholds; the worker's ``PAYPROC_CIRCUIT_*`` settings set the main ones."""

    min_payments: int = 20
    """Distinct payments in the window before the failure share is judged."""
    failure_share: float = 0.9
    """Share of those payments whose latest answer was transient that opens the circuit."""
    min_merchants: int = 2
    """Failing merchants required, when the window holds payments of that many merchants."""
    window_seconds: float = 30.0
    """A payment's latest answer counts for this long."""
    window_payments: int = 500
    """At most this many payments are kept (the oldest leave first)."""
    merchant_min_payments: int = 3
    """Failing payments of one merchant before it can be isolated."""
    merchant_release_share: float = 0.5
    """An isolated merchant is released only once fewer than this share of its payments in
    the window fail (it entered at ``failure_share``): a merchant near the line does not flap
    in and out of isolation with every answer."""
    cooldown: float = 5.0
    """Seconds an open circuit waits before probing."""
    max_cooldown: float = 30.0
    """Cap of the doubling cool-down."""
    max_hold: float = 300.0
    """Seconds of one episode (open or probing) during which failures are spared."""


@dataclass(frozen=True, slots=True)
class OpenReason:
    """Why the circuit opened: the evidence at that moment (logged and exported)."""

    payments: int
    failing_payments: int
    merchants: int
    failing_merchants: int


@dataclass(slots=True)
class _Seen:
    merchant: str
    transient: bool
    at: float


@dataclass(slots=True)
class _Tally:
    total: int = 0
    failing: int = 0


@dataclass
class GatewayBreaker:
    """Feed ``record`` every gateway answer (but 429s); ask ``spares`` what a failure costs."""

    rules: BreakerRules = field(default_factory=BreakerRules)
    state: CircuitState = CircuitState.CLOSED
    cooldown: float = 0.0
    opened_at: float | None = None
    hold_started: float | None = None
    times_opened: int = 0
    opened_because: OpenReason | None = None
    _window: OrderedDict[str, _Seen] = field(default_factory=OrderedDict)
    _merchants: dict[str, _Tally] = field(default_factory=dict)
    _total: _Tally = field(default_factory=_Tally)
    _isolating: set[str] = field(default_factory=set)
    """Merchants past the isolation line (isolated while another merchant succeeds)."""
    _probed: set[str] = field(default_factory=set)
    inconclusive_probes: int = 0
    """Probes passed over in this half-open spell (known-failing payments, isolated merchants)."""

    def __post_init__(self) -> None:
        self.cooldown = self.rules.cooldown

    # ---- feeding ----------------------------------------------------------------------------

    def record(
        self, payment_id: str, merchant_id: str, transient: bool, now: float
    ) -> CircuitState:
        """Feed one gateway answer for one payment; returns the new state."""
        if not transient:
            if self.state is not CircuitState.CLOSED:
                self._close()
            self._remember(payment_id, merchant_id, False, now)
            return self.state
        if self.state is CircuitState.CLOSED:
            self._remember(payment_id, merchant_id, True, now)
            self._judge(now)
        elif self.state is CircuitState.HALF_OPEN:
            self._probe_failed(payment_id, merchant_id, now)
        else:
            # OPEN: a message still in flight when it opened; the payment is known to fail.
            self._probed.add(payment_id)
        return self.state

    def _probe_failed(self, payment_id: str, merchant_id: str, now: float) -> None:
        if self.known_failing(payment_id) or self.isolated(merchant_id):
            self.inconclusive_probes += 1
            return
        self._probed.add(payment_id)
        self.cooldown = min(self.cooldown * 2, self.rules.max_cooldown)
        self._open(now)

    # ---- probing ------------------------------------------------------------------------------

    def probe_due(self, now: float) -> bool:
        """True when an open circuit has cooled down and should let a probe through."""
        return (
            self.state is CircuitState.OPEN
            and self.opened_at is not None
            and now - self.opened_at >= self.cooldown
        )

    def half_open(self) -> None:
        """The worker lets messages through one at a time from now on."""
        self.state = CircuitState.HALF_OPEN
        self.inconclusive_probes = 0

    # ---- what a failure costs ---------------------------------------------------------------

    def spares(self, payment_id: str, merchant_id: str, now: float) -> bool:
        """True when a transient failure of this payment should not spend its attempt
        budget: the gateway is held for down, the hold is not over, the merchant is not
        isolated, and it is not a known-failing payment passed over by a probe (those walk
        their ladder)."""
        if self.state is CircuitState.CLOSED or self.held_too_long(now):
            return False
        if self.isolated(merchant_id):
            return False
        return not (self.state is CircuitState.HALF_OPEN and self.known_failing(payment_id))

    def known_failing(self, payment_id: str) -> bool:
        """Seen failing before the circuit opened, or failed a probe in this episode."""
        seen = self._window.get(payment_id)
        return payment_id in self._probed or (seen is not None and seen.transient)

    def held_too_long(self, now: float) -> bool:
        return self.hold_started is not None and now - self.hold_started >= self.rules.max_hold

    def isolated(self, merchant_id: str) -> bool:
        """Nearly all of this merchant's payments fail while another merchant's succeed."""
        tally = self._merchants.get(merchant_id)
        if tally is None or merchant_id not in self._isolating:
            return False
        others_succeeding = (self._total.total - self._total.failing) - (
            tally.total - tally.failing
        )
        return others_succeeding > 0

    def isolated_merchants(self) -> list[str]:
        return sorted(m for m in self._isolating if self.isolated(m))

    def evidence(self) -> OpenReason:
        """The current evidence, isolated merchants left out."""
        payments = failing = merchants = failing_merchants = 0
        for merchant, tally in self._merchants.items():
            if self.isolated(merchant):
                continue
            payments += tally.total
            failing += tally.failing
            merchants += 1
            failing_merchants += tally.failing > 0
        return OpenReason(payments, failing, merchants, failing_merchants)

    # ---- internals ----------------------------------------------------------------------------

    def _judge(self, now: float) -> None:
        rules = self.rules
        total = self._total
        # Cheap necessary condition first: this runs on every transient answer.
        if total.total < rules.min_payments or total.failing < rules.failure_share * total.total:
            return
        self._expire(now)
        found = self.evidence()
        if found.payments < rules.min_payments:
            return
        if found.failing_payments < rules.failure_share * found.payments:
            return
        if found.merchants >= rules.min_merchants > found.failing_merchants:
            return
        self.opened_because = found
        self._open(now)

    def _open(self, now: float) -> None:
        if self.hold_started is None:
            self.hold_started = now
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.times_opened += 1

    def _close(self) -> None:
        self.state = CircuitState.CLOSED
        self.cooldown = self.rules.cooldown
        self.opened_at = None
        self.hold_started = None
        self._probed.clear()
        self.inconclusive_probes = 0
        self._window.clear()
        self._merchants.clear()
        self._isolating.clear()
        self._total = _Tally()

    def _remember(self, payment_id: str, merchant_id: str, transient: bool, now: float) -> None:
        previous = self._window.pop(payment_id, None)
        if previous is not None:
            self._count(previous, -1)
        seen = _Seen(merchant_id, transient, now)
        self._window[payment_id] = seen
        self._count(seen, +1)
        self._expire(now)

    def _expire(self, now: float) -> None:
        horizon = now - self.rules.window_seconds
        window = self._window
        while window:
            oldest = next(iter(window.values()))
            if oldest.at >= horizon and len(window) <= self.rules.window_payments:
                break
            window.popitem(last=False)
            self._count(oldest, -1)

    def _count(self, seen: _Seen, step: int) -> None:
        tally = self._merchants.get(seen.merchant)
        if tally is None:
            tally = self._merchants[seen.merchant] = _Tally()
        tally.total += step
        self._total.total += step
        if seen.transient:
            tally.failing += step
            self._total.failing += step
        if tally.total == 0:
            del self._merchants[seen.merchant]
            self._isolating.discard(seen.merchant)
        else:
            self._judge_merchant(seen.merchant, tally)

    def _judge_merchant(self, merchant: str, tally: _Tally) -> None:
        """Move the merchant across the isolation line: in at ``failure_share`` of its
        payments failing, out only under ``merchant_release_share``."""
        rules = self.rules
        if tally.failing < rules.merchant_min_payments:
            self._isolating.discard(merchant)
        elif merchant in self._isolating:
            if tally.failing < rules.merchant_release_share * tally.total:
                self._isolating.discard(merchant)
        elif tally.failing >= rules.failure_share * tally.total:
            self._isolating.add(merchant)
