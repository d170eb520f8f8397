"""The DLQ admin, wired: one object that builds every capability over the ports and offers
the calls the web layer, the ingest consumer and the metrics make.

Each capability is its own module and can be used on its own:

* ``ingest``      index parked messages from ``N.dlq`` (``Ingest``)
* ``browse``      list, show, stats, groups, payments (``Browse``)
* ``replay``      replay one entry, and publish-and-settle claimed entries (``Replay``); the
                  order of effects of a replay is described there
* ``discard``     discard one entry or a selection (``Discard``)
* ``audit``       the audit log and the ``@audited`` decorator every mutating call wears;
                  ``access`` audits refused authentication and roles
* ``validation``  edited bodies and filters; ``selection`` turns a bulk discard's
                  selection into batches and checks candidates of a replay dry run;
                  ``replay_rules`` what may be replayed and what is published
* ``jobs``        replay jobs, the way a selection is replayed: a frozen selection
                  published paced, fair, behind a canary, restart-safe (``jobs``, a
                  ``ReplayJobs``; the runner is started by the runtime); its dry run
                  (``previewer``, a ``ReplayPreview``); ``jobs.retention`` purges old
                  discarded and replayed entries

The calls bound in ``__init__`` are the capabilities' own methods; new capabilities
(replay jobs, reconciliation) are built next to these from the same ports and reach the
others through the attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dlq_admin.access import Access
from dlq_admin.audit import Actor, AuditLog
from dlq_admin.auth import Authenticator
from dlq_admin.browse import Browse
from dlq_admin.discard import Discard
from dlq_admin.ingest import Ingest
from dlq_admin.jobs.ports import JobStore
from dlq_admin.jobs.preview import ReplayPreview
from dlq_admin.jobs.retention import Retention
from dlq_admin.jobs.service import ReplayJobs
from dlq_admin.paging import TokenBucket
from dlq_admin.ports import (
    DlqStore,
    Observe,
    QueueProbe,
    RequestPublisher,
)
from dlq_admin.replay import Replay
from dlq_admin.validation import validate_edit
from schemas.dlq import (
    BulkReplayResult,
    DlqEntrySummary,
    DlqStats,
    RetentionStats,
)
from schemas.replay_jobs import ReplayJobCreate, ReplayJobView, ReplaySelection
from schemas.tables import utcnow

__all__ = ["Actor", "DlqAdmin", "validate_edit"]


def _ignore(_kind: str, _label: str, _value: float | None) -> None:
    return None


class DlqAdmin:
    def __init__(
        self,
        store: DlqStore,
        publisher: RequestPublisher,
        probe: QueueProbe,
        authenticator: Authenticator,
        *,
        job_store: JobStore,
        queue_name: str,
        retention_days: float | None = None,
        replay_rate: float = 500.0,
        stale_replay_after: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.probe = probe
        self.authenticator = authenticator
        self.queue_name = queue_name
        self._clock = clock
        self.observe: Observe = _ignore
        """Where the capabilities report what they ingested and replayed; the runtime
        points it at the Prometheus metrics (``AdminMetrics``)."""
        self.audit_log = AuditLog(store)
        self.access = Access(authenticator, self.audit_log)
        self.ingestor = Ingest(store, clock, self._notify)
        self.browser = Browse(store, probe, queue_name=queue_name, clock=clock)
        self.replayer = Replay(
            store,
            publisher,
            self.audit_log,
            bucket=TokenBucket(replay_rate),
            stale_replay_after=timedelta(seconds=stale_replay_after),
            clock=clock,
            observe=self._notify,
        )
        self.previewer = ReplayPreview(store, self.audit_log)
        """The dry run of ``POST /dlq/replay``: what a job over a selection would replay."""
        self.discarder = Discard(store, self.audit_log)
        self.job_store = job_store
        self.jobs = ReplayJobs(
            job_store, store, self.audit_log, default_rate=replay_rate, clock=clock
        )
        """Replay jobs: ``create``, ``list_jobs``, ``get``, ``pause``, ``resume``, ``cancel``."""
        self.retention = (
            Retention(job_store, keep=timedelta(days=retention_days), clock=clock)
            if retention_days is not None
            else None
        )
        """Purges old discarded and replayed entries (run by the runtime); None: never."""

        # The calls of the web layer, the console, the CLI and the ingest consumer, bound
        # straight to the capability that answers them (the signatures live there only).
        self.authenticate = self.access.authenticate
        """The caller's principal; a refusal is audited and raised as ``Unauthenticated``."""
        self.authorize = self.access.authorize
        """Return if the principal may act with the role needed; a refusal is audited."""
        self.audit = self.audit_log.record
        """Write one audit row (a refusal the web layer saw before any capability ran)."""
        self.audit_page = self.audit_log.page
        self.ingest = self.ingestor.ingest
        """Store one parked message unless it was stored before; True if it is new."""
        self.list_entries = self.browser.list_entries
        self.get_entry = self.browser.get_entry
        self.groups = self.browser.groups
        self.payment = self.browser.payment
        self.replay = self.replayer.replay
        """Replay one entry (optionally with an edited, re-validated body)."""
        self.bulk_discard = self.discarder.bulk_discard

    def replayer_paced_by(self, bucket: TokenBucket) -> Replay:
        """A ``Replay`` like ``replayer`` but paced by ``bucket`` (a replay job's own rate)."""
        return Replay(
            self.store,
            self.publisher,
            self.audit_log,
            bucket=bucket,
            stale_replay_after=self.replayer.stale_replay_after,
            clock=self._clock,
            observe=self._notify,
        )

    def _notify(self, kind: str, label: str, value: float | None) -> None:
        self.observe(kind, label, value)

    async def stats(self) -> DlqStats:
        """Counts, oldest parked entry, queue depth, and what retention purges within 24 h."""
        stats = await self.browser.stats()
        if self.retention is None:
            return stats
        due = await self.retention.due_within()
        return stats.model_copy(
            update={"retention": RetentionStats(days=self.retention.days, purge_next_24h=due)}
        )

    # ---- replay and discard (audited by the capabilities) -------------------------------

    async def replay_selection(
        self, actor: Actor, selection: ReplaySelection
    ) -> BulkReplayResult | ReplayJobView:
        """``POST /dlq/replay``: a dry run answers what a job over the selection would replay
        (and what it would skip, why); otherwise a replay job over the selection (frozen now)
        is created."""
        if selection.dry_run:
            return await self.previewer.preview(actor, selection)
        request = ReplayJobCreate.model_validate(selection.model_dump(exclude={"dry_run"}))
        job = await self.jobs.create(actor, request)
        assert isinstance(job, ReplayJobView)
        return job

    async def discard(
        self, actor: Actor, entry_id: str, note: str | None = None
    ) -> DlqEntrySummary:
        """Mark one entry ``discarded`` (the row stays; nothing is deleted)."""
        return (await self.discarder.discard(actor, entry_id, note)).entry
