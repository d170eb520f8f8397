"""The gateway breaker as a pure state machine over (payment, merchant, outcome, time): one
test per rule."""

from __future__ import annotations

from dataclasses import replace

from processor.protection.breaker import BreakerRules, CircuitState, GatewayBreaker

RULES = BreakerRules(
    min_payments=10,
    min_merchants=2,
    window_seconds=30.0,
    cooldown=10.0,
    max_cooldown=40.0,
    max_hold=300.0,
    merchant_min_payments=3,
)


def breaker(**changes: float) -> GatewayBreaker:
    return GatewayBreaker(replace(RULES, **changes))


def outage(b: GatewayBreaker, payments: int = 10, now: float = 100.0) -> None:
    """``payments`` distinct payments of rotating merchants all fail at ``now``."""
    for i in range(payments):
        b.record(f"down-{i}", f"m{i % 5}", True, now)


def tripped(**changes: float) -> GatewayBreaker:
    b = breaker(**changes)
    outage(b)
    assert b.state is CircuitState.OPEN
    return b


def test_an_outage_across_payments_and_merchants_opens_the_circuit() -> None:
    """Every one of min_payments distinct payments failing, across merchants, opens it; the
    reason says how many payments and merchants."""
    b = breaker()
    outage(b, payments=9)
    assert b.state is CircuitState.CLOSED
    b.record("down-9", "m4", True, 100.0)
    assert b.state is CircuitState.OPEN
    assert b.opened_because is not None
    assert b.opened_because.failing_payments == 10
    assert b.opened_because.failing_merchants == 5


def test_a_payments_repeated_failures_count_once() -> None:
    """Five payments failing four times each are 20 answers but 5 payments: not enough."""
    b = breaker()
    for attempt in range(4):
        for i in range(5):
            b.record(f"p{i}", f"m{i}", True, 100.0 + attempt)
    assert b.state is CircuitState.CLOSED
    assert b.evidence().payments == 5


def test_below_the_minimum_number_of_payments_nothing_opens() -> None:
    """Few payments failing alone (a quiet night) never open the circuit."""
    b = breaker(min_payments=20)
    outage(b, payments=19)
    assert b.state is CircuitState.CLOSED


def test_a_share_of_failing_payments_below_the_threshold_keeps_it_closed() -> None:
    """20% of payments failing on every attempt while the rest succeed: closed for good."""
    b = breaker()
    for i in range(500):
        b.record(f"p{i}", f"m{i % 7}", i % 5 == 0, 100.0 + i * 0.01)
        if i % 5 == 0:  # its retries fail too
            b.record(f"p{i}", f"m{i % 7}", True, 100.0 + i * 0.01)
    assert b.times_opened == 0


def test_failures_of_one_merchant_do_not_open_while_other_merchants_are_seen() -> None:
    """All failing payments from one merchant, next to healthy merchants: not the gateway."""
    b = breaker()
    b.record("ok", "healthy", False, 100.0)
    for i in range(40):
        b.record(f"bad-{i}", "broken", True, 100.0 + i * 0.01)
    assert b.state is CircuitState.CLOSED
    assert b.isolated("broken")
    assert not b.isolated("healthy")


def test_with_only_one_merchant_in_sight_payments_alone_decide() -> None:
    """A single-merchant deployment cannot tell merchants apart: its payments decide."""
    b = breaker()
    for i in range(10):
        b.record(f"p{i}", "only", True, 100.0)
    assert b.state is CircuitState.OPEN


def test_an_isolated_merchant_is_left_out_of_the_evidence() -> None:
    """A broken merchant's many failures do not tip the share when two others fail a little."""
    b = breaker()
    for i in range(8):
        b.record(f"ok-{i}", "healthy", False, 100.0)
    for i in range(200):
        b.record(f"bad-{i}", "broken", True, 100.0)
    b.record("x1", "other", True, 100.0)
    assert b.state is CircuitState.CLOSED
    assert b.evidence().payments == 9


def test_evidence_older_than_the_window_is_forgotten() -> None:
    """Failures spread further apart than the window never add up."""
    b = breaker(window_seconds=5.0)
    for i in range(30):
        b.record(f"p{i}", f"m{i % 3}", True, 100.0 + i * 1.0)
    assert b.state is CircuitState.CLOSED
    assert b.evidence().payments <= 6


def test_probe_is_due_only_after_the_cooldown() -> None:
    b = tripped()
    assert not b.probe_due(109.9)
    assert b.probe_due(110.0)
    assert not breaker().probe_due(10_000.0)


def test_a_successful_probe_closes_and_resets() -> None:
    """A good answer closes the circuit, restores the cool-down and forgets the evidence."""
    b = tripped()
    b.half_open()
    b.record("fresh-1", "m1", True, 111.0)  # a failed probe doubles the cool-down
    b.half_open()
    assert b.record("fresh-2", "m2", False, 200.0) is CircuitState.CLOSED
    assert b.cooldown == 10.0
    assert b.hold_started is None
    assert b.evidence().failing_payments == 0


def test_a_failed_probe_from_a_fresh_payment_reopens_with_a_doubled_cooldown() -> None:
    b = tripped()
    b.half_open()
    assert b.record("fresh", "m1", True, 120.0) is CircuitState.OPEN
    assert b.opened_at == 120.0
    assert b.cooldown == 20.0
    assert not b.probe_due(139.0)
    assert b.probe_due(140.0)


def test_the_cooldown_doubling_is_capped() -> None:
    b = tripped()
    now = 100.0
    for i in range(6):
        now += b.cooldown
        b.half_open()
        b.record(f"fresh-{i}", "m1", True, now)
    assert b.cooldown == 40.0


def test_probes_move_past_payments_known_to_fail() -> None:
    """A probe from a payment that was failing before, or a payment already probed, is
    inconclusive: the circuit stays half-open so the next message is probed, and that
    payment's failure is not spared (it walks its ladder); a fresh failure re-opens."""
    b = tripped()
    b.half_open()
    for i in range(8):
        assert b.record(f"down-{i}", f"m{i % 5}", True, 111.0) is CircuitState.HALF_OPEN
        assert not b.spares(f"down-{i}", f"m{i % 5}", 111.0)
    assert b.inconclusive_probes == 8
    assert b.spares("fresh", "m1", 111.0)
    assert b.record("fresh", "m1", True, 112.0) is CircuitState.OPEN
    assert b.spares("fresh", "m1", 112.0)  # open: every failure is spared
    b.half_open()
    # "fresh" failed as a probe before: inconclusive this time, and not spared.
    assert b.record("fresh", "m1", True, 200.0) is CircuitState.HALF_OPEN
    assert not b.spares("fresh", "m1", 200.0)
    assert b.record("healthy", "m2", False, 200.5) is CircuitState.CLOSED


def test_while_open_failures_are_spared_within_the_hold_only() -> None:
    """Failures are spared while the circuit is open or probing, until the hold has passed
    since the episode began (re-opening does not restart it)."""
    b = tripped(max_hold=60.0)
    assert not breaker().spares("p", "m1", 100.0)
    assert b.spares("p", "m1", 100.0)
    b.half_open()
    b.record("fresh", "m1", True, 130.0)  # re-opens; the hold still counts from 100
    assert b.spares("p", "m1", 159.0)
    assert not b.spares("p", "m1", 160.0)
    assert b.held_too_long(160.0)


def test_an_isolated_merchants_failures_are_never_spared() -> None:
    """While open, the payments of an isolated merchant walk their ladder."""
    b = breaker()
    b.record("ok", "healthy", False, 100.0)
    for i in range(5):
        b.record(f"bad-{i}", "broken", True, 100.0)
    outage(b, payments=40, now=101.0)
    assert b.state is CircuitState.OPEN
    assert b.isolated("broken")
    assert not b.spares("p", "broken", 101.0)
    assert b.spares("p", "m1", 101.0)


def test_an_isolated_merchant_does_not_flap_on_each_success() -> None:
    """In at 90% of its payments failing, out only under 50%: a merchant hovering around the
    line (one success, then one failure, ...) stays isolated instead of toggling."""
    b = breaker(merchant_release_share=0.5)
    b.record("ok", "healthy", False, 100.0)
    for i in range(9):
        b.record(f"bad-{i}", "shaky", True, 100.0)
    assert b.isolated("shaky")
    for i in range(4):  # 9 failing of 13 (69%): under the entry line, above the release line
        b.record(f"fine-{i}", "shaky", False, 100.0)
        assert b.isolated("shaky")
    for i in range(6):  # 9 failing of 19 (47%): released
        b.record(f"better-{i}", "shaky", False, 100.0)
    assert not b.isolated("shaky")
    b.record("bad-again", "shaky", True, 100.0)  # 10 of 20: not back in at 50%
    assert not b.isolated("shaky")


def test_a_merchant_whose_failures_age_out_is_released() -> None:
    """Its failing payments leave the window: under merchant_min_payments, not isolated."""
    b = breaker(window_seconds=5.0)
    for i in range(3):
        b.record(f"bad-{i}", "shaky", True, 100.0)
    b.record("ok", "healthy", False, 104.0)
    assert b.isolated("shaky")
    b.record("ok-later", "healthy", False, 106.0)
    assert not b.isolated("shaky")
    assert b.isolated_merchants() == []


def test_in_a_real_outage_a_merchant_is_not_isolated() -> None:
    """Isolation needs another merchant succeeding; when all fail, nobody is isolated."""
    b = breaker(min_payments=1000)
    outage(b, payments=50)
    assert b.isolated_merchants() == []


def test_answers_in_flight_while_open_do_not_change_it_but_a_success_closes() -> None:
    """A failure arriving while open marks its payment known-failing (a later probe from it
    is inconclusive); a success closes the circuit."""
    b = tripped()
    assert b.record("late", "m1", True, 101.0) is CircuitState.OPEN
    assert b.known_failing("late")
    assert b.record("late-ok", "m1", False, 102.0) is CircuitState.CLOSED
