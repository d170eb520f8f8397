"""The per-worker rate limiter as a pure function of time: paced slots, a share, AIMD."""

from __future__ import annotations

import itertools

from processor.protection.rate import MIN_SHARE, RateCore


def slots(core: RateCore, count: int, now: float) -> list[float]:
    return [core.reserve(now) for _ in range(count)]


def test_slots_are_spaced_one_over_the_rate() -> None:
    """100/s: a backlog of 100 requests is spread over one second (after a small burst)."""
    core = RateCore(100.0, burst_seconds=0.05)
    taken = slots(core, 106, now=10.0)
    assert taken[:6] == [10.0] * 6  # 0.05 s of burst
    assert abs(taken[-1] - 11.0) < 1e-9
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(taken[5:])}
    assert gaps == {0.01}


def test_idle_time_does_not_bank_more_than_the_burst() -> None:
    core = RateCore(100.0, burst_seconds=0.05)
    slots(core, 10, now=0.0)
    taken = slots(core, 20, now=100.0)
    assert sum(1 for t in taken if t <= 100.0 + 1e-9) == 6


def test_a_429_pauses_every_sender_until_retry_after_and_halves_the_rate() -> None:
    core = RateCore(100.0)
    slots(core, 5, now=0.0)
    core.rate_limited(0.5, now=0.0)
    assert core.rate == 50.0
    assert core.pause_until == 0.5
    assert core.reserve(0.1) >= 0.5


def test_a_burst_of_429s_halves_the_rate_once() -> None:
    """The answers of requests sent before the first 429 do not each halve the rate."""
    core = RateCore(100.0, recovery_seconds=1e9)
    for i in range(10):
        core.rate_limited(0.2, now=i * 0.01)
    assert round(core.rate, 6) == 50.0
    assert core.limited == 10


def test_the_rate_climbs_back_to_the_share_linearly() -> None:
    core = RateCore(100.0, recovery_seconds=5.0)
    core.rate_limited(0.1, now=0.0)
    core.reserve(1.0)
    assert abs(core.rate - 70.0) < 1e-9
    core.reserve(100.0)
    assert core.rate == 100.0


def test_the_rate_never_falls_below_a_floor() -> None:
    core = RateCore(100.0, recovery_seconds=1e9)
    for i in range(20):
        core.rate_limited(0.01, now=float(i))
    assert round(core.rate, 6) == 100.0 * MIN_SHARE


def test_a_new_share_is_taken_at_once_unless_429s_came_recently() -> None:
    """A second worker joined: the share halves and so does the pace; it left: the pace
    doubles at once. Shortly after a 429 the larger share is approached additively."""
    core = RateCore(200.0, recovery_seconds=20.0, quiet_seconds=5.0)
    core.set_ceiling(100.0, now=0.0)
    assert core.rate == 100.0
    core.set_ceiling(200.0, now=0.0)
    assert core.rate == 200.0
    core.rate_limited(0.1, now=10.0)
    core.set_ceiling(400.0, now=11.0)
    assert 100.0 < core.rate < 150.0


def test_slots_taken_before_the_rate_drops_are_taken_again() -> None:
    """Waiters holding slots spaced for the old rate must not keep that pace."""
    core = RateCore(100.0)
    slot = core.reserve(0.0)
    late = max(core.reserve(0.0) for _ in range(50))
    core.set_ceiling(50.0, now=0.1)
    assert core.still_valid(slot, 0.0)  # a slot that was due before the drop
    assert not core.still_valid(late, 0.0)
    assert core.reserve(0.1) < late  # re-reserved from now, at the new pace
