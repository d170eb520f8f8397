"""Prometheus metrics of the admin service (no web imports: the route renders ``render()``).

Gauges are read from the database and the queue at scrape time, so they are right even after
a restart; counters count what this process ingested and replayed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from dlq_admin.service import DlqAdmin


class AdminMetrics:
    def __init__(self, service: DlqAdmin) -> None:
        self.service = service
        self.registry = r = CollectorRegistry()
        self.entries = Gauge(
            "payproc_dlq_entries", "Indexed DLQ entries by status", ["status"], registry=r
        )
        self.parked = Gauge(
            "payproc_dlq_parked",
            "Parked (not yet replayed) entries by reason",
            ["reason"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "payproc_dlq_queue_depth", "Messages waiting in N.dlq, not yet ingested", registry=r
        )
        self.oldest_age = Gauge(
            "payproc_dlq_oldest_parked_age_seconds", "Age of the oldest parked entry", registry=r
        )
        self.ingest_lag = Gauge(
            "payproc_dlq_ingest_lag_seconds",
            "Parked-to-indexed delay of the last ingested message",
            registry=r,
        )
        self.ingested = Counter(
            "payproc_dlq_ingested", "DLQ messages indexed, by reason", ["reason"], registry=r
        )
        self.replays = Counter(
            "payproc_dlq_replays",
            "Replays by outcome (replayed, failed)",
            ["outcome"],
            registry=r,
        )
        self.unknown = Gauge(
            "payproc_payments_unknown",
            "Payments whose outcome is unknown: the gateway may have charged them",
            registry=r,
        )
        self.oldest_unknown = Gauge(
            "payproc_payments_oldest_unknown_age_seconds",
            "How long the oldest unknown payment has been unknown (0 when there is none)",
            registry=r,
        )
        service.observe = self.observe

    def observe(self, kind: str, label: str, value: float | None) -> None:
        if kind == "ingested":
            self.ingested.labels(reason=label).inc()
            if value is not None:
                self.ingest_lag.set(value)
        elif kind == "replay":
            self.replays.labels(outcome=label).inc()

    async def render(self) -> bytes:
        stats = await self.service.stats()
        for status, count in stats.by_status.items():
            self.entries.labels(status=status).set(count)
        for reason in {*stats.by_reason, *stats.parked_by_reason}:
            self.parked.labels(reason=reason).set(stats.parked_by_reason.get(reason, 0))
        self.queue_depth.set(stats.queue.waiting if stats.queue.waiting is not None else -1)
        self.oldest_age.set(stats.oldest_parked_age_seconds or 0.0)
        self.unknown.set(stats.unknown_payments)
        self.oldest_unknown.set(stats.oldest_unknown_age_seconds or 0.0)
        return generate_latest(self.registry)
