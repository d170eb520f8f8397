"""The gateway circuit breaker as a pure state machine over (outcome, time)."""

from __future__ import annotations

from processor.circuit import CircuitBreaker, CircuitState


def tripped(
    threshold: int = 3, cooldown: float = 10.0, max_cooldown: float = 60.0
) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cooldown, max_cooldown)
    for _ in range(threshold):
        breaker.record(transient=True, now=100.0)
    assert breaker.state is CircuitState.OPEN
    return breaker


def test_circuit_opens_after_threshold_consecutive_transients() -> None:
    """The threshold-th transient in a row opens the circuit, not one earlier."""
    breaker = CircuitBreaker(threshold=3, cooldown=10.0)
    assert breaker.record(True, 1.0) is CircuitState.CLOSED
    assert breaker.record(True, 2.0) is CircuitState.CLOSED
    assert breaker.record(True, 3.0) is CircuitState.OPEN
    assert breaker.opened_at == 3.0
    assert breaker.times_opened == 1


def test_a_good_answer_resets_the_consecutive_count() -> None:
    """A non-transient answer between failures keeps the circuit closed."""
    breaker = CircuitBreaker(threshold=3, cooldown=10.0)
    for now in (1.0, 2.0):
        breaker.record(True, now)
    breaker.record(False, 3.0)
    assert breaker.consecutive_failures == 0
    breaker.record(True, 4.0)
    breaker.record(True, 5.0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.record(True, 6.0) is CircuitState.OPEN


def test_probe_is_due_only_after_the_cooldown() -> None:
    """An open circuit lets a probe through once the cooldown has fully passed."""
    breaker = tripped(cooldown=10.0)
    assert not breaker.probe_due(109.9)
    assert breaker.probe_due(110.0)


def test_a_closed_circuit_never_asks_for_a_probe() -> None:
    """Probing is only for open circuits."""
    breaker = CircuitBreaker(threshold=3, cooldown=10.0)
    assert not breaker.probe_due(10_000.0)


def test_half_open_success_closes_and_resets_the_cooldown() -> None:
    """A good probe answer closes the circuit and restores the base cooldown."""
    breaker = tripped(cooldown=10.0)
    breaker.half_open()
    breaker.record(True, 111.0)  # failed probe doubles the cooldown
    breaker.half_open()
    assert breaker.record(False, 200.0) is CircuitState.CLOSED
    assert breaker.cooldown == 10.0
    assert breaker.opened_at is None
    assert breaker.consecutive_failures == 0


def test_half_open_failure_reopens_with_a_doubled_cooldown() -> None:
    """A failed probe re-opens the circuit at once, from now, for twice as long."""
    breaker = tripped(cooldown=10.0)
    breaker.half_open()
    assert breaker.record(True, 120.0) is CircuitState.OPEN
    assert breaker.opened_at == 120.0
    assert breaker.cooldown == 20.0
    assert breaker.times_opened == 2
    assert not breaker.probe_due(139.0)
    assert breaker.probe_due(140.0)


def test_doubled_cooldown_is_capped() -> None:
    """Repeated failed probes never push the cooldown past max_cooldown."""
    breaker = tripped(cooldown=10.0, max_cooldown=25.0)
    now = 100.0
    for _ in range(5):
        now += breaker.cooldown
        breaker.half_open()
        breaker.record(True, now)
    assert breaker.cooldown == 25.0
    assert breaker.state is CircuitState.OPEN


def test_max_cooldown_below_the_base_is_raised_to_the_base() -> None:
    """A cap smaller than the base cooldown cannot shorten the cooldown."""
    breaker = CircuitBreaker(threshold=1, cooldown=30.0, max_cooldown=5.0)
    breaker.record(True, 0.0)
    breaker.half_open()
    breaker.record(True, 30.0)
    assert breaker.cooldown == 30.0


def test_clustered_random_failures_do_not_open_the_circuit() -> None:
    """30% failures arriving in runs of up to 15 (as batches finish together) never trip a
    20-answer window; a real outage (every answer failing) does."""
    breaker = CircuitBreaker(threshold=20, cooldown=5.0)
    pattern = [True] * 15 + [False] * 35  # 30% failures, clustered
    for now, transient in enumerate(pattern * 200):
        breaker.record(transient, float(now))
    assert breaker.times_opened == 0
    for now in range(20):
        breaker.record(True, 20_000.0 + now)
    assert breaker.state is CircuitState.OPEN
