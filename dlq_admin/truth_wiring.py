"""Wiring outcome truth into the admin process: the gateway lookup, the replay check, the
``unknown`` counts of ``/dlq/stats`` and the reconciler's background task.

``wire_outcome_truth`` sets the checks of the service's single replay and replay dry run;
the runtime hands ``OutcomeTruth.replay.bulk_skips`` to every replay job it runs."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from dlq_admin.reconciler import EventSink, Reconciler
from dlq_admin.replay_truth import ReplayTruth
from dlq_admin.service import DlqAdmin
from dlq_admin.truth_store import SqlTruthStore
from processor.adapters.gateway_factory import GatewayAdapter, build_gateway
from processor.config import Settings


@dataclass
class OutcomeTruth:
    store: SqlTruthStore
    gateway: GatewayAdapter
    reconciler: Reconciler
    replay: ReplayTruth
    """The replay check: ``check`` for a single replay, ``bulk_skips`` for the batches of a
    replay job and its dry run."""


def build_reconciler(
    settings: Settings, engine: AsyncEngine, events: EventSink
) -> tuple[SqlTruthStore, GatewayAdapter, Reconciler]:
    """The reconciler over the worker's database and the gateway the settings select."""
    store = SqlTruthStore(engine, settings.namespace)
    gateway = build_gateway(settings)
    reconciler = Reconciler(
        store,
        gateway,
        events,
        first_delay=settings.reconcile_interval,
        max_delay=settings.reconcile_max_delay,
    )
    return store, gateway, reconciler


async def wire_outcome_truth(
    settings: Settings,
    engine: AsyncEngine,
    service: DlqAdmin,
    events: EventSink,
    stack: contextlib.AsyncExitStack,
    *,
    run_reconciler: bool,
) -> OutcomeTruth:
    store, gateway, reconciler = build_reconciler(settings, engine, events)
    stack.push_async_callback(gateway.aclose)
    replay_truth = ReplayTruth(store, gateway, events, settings.gateway_idempotency_ttl)
    service.replayer.truth_check = replay_truth.check
    service.previewer.truth_skips = replay_truth.bulk_skips
    service.browser.unknown_counts = store.unknown_counts
    if run_reconciler:
        stop = asyncio.Event()
        task = asyncio.create_task(reconciler.run(stop, settings.reconcile_interval))

        async def halt() -> None:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)

        stack.push_async_callback(halt)
    return OutcomeTruth(store, gateway, reconciler, replay_truth)
