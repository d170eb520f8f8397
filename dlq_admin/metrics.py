"""Prometheus metrics of the admin service (no web imports: the route renders ``render()``).

Gauges are read from the database and the queue at scrape time, so they are right even after
a restart; counters count what this process ingested and replayed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from dlq_admin.service import DlqAdmin
from schemas.replay_jobs import JobState


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
        self.jobs = Gauge(
            "payproc_dlq_replay_jobs",
            "Replay jobs not finished yet, by state (running, paused)",
            ["state"],
            registry=r,
        )
        self.jobs_self_paused = Gauge(
            "payproc_dlq_replay_jobs_self_paused",
            "Replay jobs their canary paused (too many replayed payments failed again)",
            registry=r,
        )
        self.job_entries = Gauge(
            "payproc_dlq_replay_job_entries",
            "Entries of each unfinished replay job by progress state (waiting, published, "
            "succeeded, failed, skipped)",
            ["job_id", "state"],
            registry=r,
        )
        self.job_events = Counter(
            "payproc_dlq_replay_job_events",
            "Replay job events of this process (self_paused, completed)",
            ["event"],
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

    def job_event(self, event: str, _job_id: str) -> None:
        self.job_events.labels(event=event).inc()

    async def _render_jobs(self) -> None:
        active = await self.service.job_store.active_jobs()
        figures = await self.service.job_store.figures([j.id for j in active])
        self.job_entries.clear()
        states = {JobState.RUNNING.value: 0, JobState.PAUSED.value: 0}
        for job in active:
            states[job.state.value] += 1
            f = figures.get(job.id)
            if f is None:
                continue
            for state, count in (
                ("waiting", f.unpublished),
                ("published", f.all_published),
                ("following", f.published),
                ("succeeded", f.succeeded),
                ("failed", f.failed),
                ("skipped", f.skipped),
            ):
                self.job_entries.labels(job_id=job.id, state=state).set(count)
        for state, count in states.items():
            self.jobs.labels(state=state).set(count)
        self.jobs_self_paused.set(sum(1 for j in active if j.self_paused))

    async def render(self) -> bytes:
        await self._render_jobs()
        stats = await self.service.stats()
        for status, count in stats.by_status.items():
            self.entries.labels(status=status).set(count)
        for reason in {*stats.by_reason, *stats.parked_by_reason}:
            self.parked.labels(reason=reason).set(stats.parked_by_reason.get(reason, 0))
        self.queue_depth.set(stats.queue.waiting if stats.queue.waiting is not None else -1)
        self.oldest_age.set(stats.oldest_parked_age_seconds or 0.0)
        return generate_latest(self.registry)
