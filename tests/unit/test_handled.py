"""The typed outcome: what the consumer counts and what the worker's metrics are labelled by."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from processor.handled import Handled, Outcome
from processor.metrics import WorkerMetrics
from schemas.outcome import ParkReason


def _sample(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_retry_counts_once_as_retry_and_once_under_its_delay_queue() -> None:
    """A retry through the 5 s queue is outcome "retry" and delay "5s" (the queue's suffix)."""
    metrics = WorkerMetrics()
    metrics.observe(Handled(Outcome.RETRY, delay=5.0, gateway_called=True, transient=True))
    metrics.observe(Handled(Outcome.RETRY, delay=0.25, gateway_called=True, transient=True))
    assert _sample(metrics, "payproc_payments_total", outcome="retry") == 2
    assert _sample(metrics, "payproc_retries_total", delay="5s") == 1
    assert _sample(metrics, "payproc_retries_total", delay="0.25s") == 1


def test_a_parking_is_labelled_with_its_reason() -> None:
    """Parkings keep the labels the alert rules use: parked_<reason>."""
    metrics = WorkerMetrics()
    metrics.observe(Handled(Outcome.PARKED, park_reason=ParkReason.GATEWAY_REJECTED))
    metrics.observe(Handled(Outcome.SUCCEEDED, gateway_called=True, transient=False))
    assert _sample(metrics, "payproc_payments_total", outcome="parked_gateway_rejected") == 1
    assert _sample(metrics, "payproc_payments_total", outcome="succeeded") == 1
    assert _sample(metrics, "payproc_retries_total", delay="5s") is None


def test_a_deferral_is_not_counted_as_a_retry() -> None:
    """A copy deferred past another worker's lease is no retry: no gateway attempt failed."""
    metrics = WorkerMetrics()
    metrics.observe(Handled(Outcome.DEFERRED, delay=30.0))
    assert _sample(metrics, "payproc_payments_total", outcome="deferred") == 1
    assert _sample(metrics, "payproc_retries_total", delay="30s") is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: Handled(Outcome.PARKED),
        lambda: Handled(Outcome.SUCCEEDED, park_reason=ParkReason.POISON),
        lambda: Handled(Outcome.RETRY),
        lambda: Handled(Outcome.DECLINED, delay=1.0),
    ],
)
def test_an_outcome_without_its_facts_or_with_foreign_ones_is_refused(
    build: Callable[[], Handled],
) -> None:
    """PARKED needs a reason and RETRY/DEFERRED a delay; no other outcome takes either."""
    with pytest.raises(ValueError, match="goes with"):
        build()
