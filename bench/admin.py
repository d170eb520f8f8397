"""The DLQ admin API at scale: list latency with 100,000 entries, and the bulk replay rate.

What one run does: a fresh namespace and database (``payproc db upgrade``), ``entries``
parked entries bulk-inserted straight into ``dlq_entries`` (four reasons, 50 merchants,
spread over the last days, the payment body as the worker parks it), then the real admin
server (``python -m processor admin --no-ingest``: uvicorn + FastAPI, its own process) is
started and driven over HTTP with httpx, one request at a time:

* ``GET /dlq/messages`` (first page, default size), ``?reason=...`` (a filter), and pages
  deep in the listing (following ``next_cursor``): p50/p95 over ``requests`` calls each;
* ``POST /dlq/replay {"reason": ..., "limit": replay}``: entries republished per second, from
  the request until the replay job it creates has nothing left to publish (batches: one claim
  transaction, confirmed publishes all in flight, one settling transaction, then the
  ``payment.replayed`` events). A job's default rate is ``PAYPROC_ADMIN_REPLAY_RATE``
  (default 500/s); the benchmark raises it to measure what the mechanism can do.

Tolerant by design: while ``dlq_admin`` is missing or incomplete, ``run`` returns
``AdminResults(available=False, reason=...)`` and the table says "admin: not available".
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import (
    AMQP_URL,
    BenchError,
    Proc,
    connect,
    each_database,
    log,
    python,
    queue_depth,
    short_id,
)
from bench.database import Database
from bench.results import AdminFailed, AdminFigures, AdminResults, Latencies

_LISTENING = re.compile(r"admin API listening on (http://\S+)")
TOKEN = "bench-" + uuid.uuid4().hex  # a throwaway operator token for this run only
REASONS = ("retries_exhausted", "gateway_rejected", "invalid_message", "poison")
INSERT_BATCH = 5_000


def available() -> str | None:
    """``None`` when the admin can be benchmarked, else why not."""
    try:
        from dlq_admin.web import create_app  # noqa: F401
        from schemas.dlq_tables import DlqEntryRow  # noqa: F401
    except Exception as exc:
        return f"dlq_admin not importable ({type(exc).__name__}: {exc})"
    try:
        from dlq_admin.cli import register  # noqa: F401
    except Exception as exc:
        return f"no `payproc admin` command ({type(exc).__name__})"
    return None


def job_batch(rate: float) -> int | None:
    """How many entries one round of a replay job at ``rate`` per second claims, publishes and
    settles together (``dlq_admin.jobs.execution.Pacing``), if known."""
    with contextlib.suppress(Exception):
        from dlq_admin.jobs.execution import Pacing

        return Pacing(rate, None).chunk
    return None


def _sync_url(db: Database) -> str:
    if db.kind == "sqlite":
        return db.url
    return db.url.replace("postgresql://", "postgresql+psycopg://", 1)


def _rows(namespace: str, start: int, count: int, now: datetime) -> list[dict[str, Any]]:
    import orjson

    from processor.producer import generate_payments

    try:
        from dlq_admin.parse import fingerprint_of
        from schemas.outcome import ParkReason

        def fingerprint(reason: str, code: str, status: int | None) -> str:
            return fingerprint_of(ParkReason(reason), code, status, None)
    except ImportError:  # pragma: no cover - older admin

        def fingerprint(reason: str, code: str, status: int | None) -> str:
            return f"{reason}|{code}|{status or '-'}|-"

    rows = []
    for offset, payment in enumerate(generate_payments(count, seed=start + 17)):
        index = start + offset
        reason = REASONS[index % len(REASONS)]
        status = {"gateway_rejected": 422, "retries_exhausted": 503}.get(reason)
        code = {
            "gateway_rejected": "unprocessable",
            "retries_exhausted": "service_unavailable",
            "invalid_message": "schema_violation",
            "poison": "processing_crashed",
        }[reason]
        entry_id = str(uuid.uuid4())
        body = orjson.dumps(payment).decode()
        at = now - timedelta(seconds=index * 3)
        rows.append(
            {
                "id": entry_id,
                "namespace": namespace,
                "dedup_key": f"park:{entry_id}",
                "status": "parked",
                "reason": reason,
                "fingerprint": fingerprint(reason, code, status),
                "error_code": code,
                "error_message": f"bench entry {index}",
                "http_status": status,
                "exception_type": None,
                "attempts": 6 if reason == "retries_exhausted" else 1,
                "payment_id": payment["payment_id"],
                "merchant_id": payment["merchant_id"],
                "dead_lettered_at": at,
                "ingested_at": at,
                "body": body,
                "body_bytes": len(body),
                "headers": "{}",
                "content_type": "application/json",
                "message_id": payment["payment_id"],
                "correlation_id": None,
                "reply_to": None,
                "origin": "bench",
                "replay_of": None,
                "updated_at": at,
            }
        )
    return rows


def insert_entries(db: Database, namespace: str, count: int) -> float:
    """Bulk-insert ``count`` parked entries through SQLAlchemy Core (so values are stored
    exactly as the admin's own dialect stores them); returns rows/s."""
    from sqlalchemy import create_engine

    from schemas.dlq_tables import DlqEntryRow

    table = DlqEntryRow.__table__  # type: ignore[attr-defined]
    known = {c.name for c in table.columns}
    engine = create_engine(_sync_url(db))
    now = datetime.now(UTC)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            for start in range(0, count, INSERT_BATCH):
                rows = _rows(namespace, start, min(INSERT_BATCH, count - start), now)
                conn.execute(
                    table.insert(), [{k: v for k, v in r.items() if k in known} for r in rows]
                )
    finally:
        engine.dispose()
    return count / (time.perf_counter() - started)


def _percentiles(samples: list[float]) -> Latencies:
    ordered = sorted(samples)
    return Latencies(
        p50_ms=round(1000 * statistics.median(ordered), 2),
        p95_ms=round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
        max_ms=round(1000 * ordered[-1], 2),
        n=len(ordered),
    )


async def _timed_gets(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], requests: int
) -> Latencies:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path, params=params)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise BenchError(
                f"GET {path} {params} answered {response.status_code}: {response.text[:300]}"
            )
    return _percentiles(samples)


async def _deep_pages(client: httpx.AsyncClient, pages: int) -> Latencies:
    """Follow ``next_cursor`` ``pages`` times: the cost of paging deep into the listing."""
    samples = []
    cursor: str | None = None
    for _ in range(pages):
        params = {"cursor": cursor} if cursor else {}
        started = time.perf_counter()
        response = await client.get("/dlq/messages", params=params)
        samples.append(time.perf_counter() - started)
        response.raise_for_status()
        cursor = response.json().get("next_cursor")
        if not cursor:
            break
    return _percentiles(samples)


async def _published(client: httpx.AsyncClient, job_id: str, deadline: float) -> dict[str, Any]:
    """The replay job ``POST /dlq/replay`` created, once it has nothing left to publish."""
    while True:
        response = await client.get(f"/dlq/replay-jobs/{job_id}")
        response.raise_for_status()
        job: dict[str, Any] = response.json()
        if job["waiting"] == 0:
            return job
        if time.perf_counter() > deadline:
            raise BenchError(f"replay job {job_id} still publishing: {job}")
        await asyncio.sleep(0.01)


@dataclass
class AdminUnderTest:
    """A real ``payproc admin`` over a fresh database holding ``entries`` parked entries, its
    namespace's topology declared (replays need ``N.requests``: no worker runs)."""

    namespace: str
    connection: Any
    client: httpx.AsyncClient
    insert_rate: float


@contextlib.asynccontextmanager
async def admin_under_test(
    db_kind: str, label: str, entries: int, request_timeout: float
) -> AsyncIterator[AdminUnderTest]:
    """Start an admin (API only, no ingest) over ``entries`` bulk-inserted entries; stop it,
    delete its topology and drop its database afterwards."""
    from bench.payproc_runs import migrate
    from retry.names import Names
    from retry.policy import parse_delays
    from retry.topology import declare_topology, delete_topology

    namespace = f"bench-{label}-{short_id()}"
    db = Database(db_kind, label)
    connection = await connect()
    server: Proc | None = None
    delays = parse_delays("1,5,30,120,600")
    try:
        env = {
            "PAYPROC_AMQP_URL": AMQP_URL,
            "PAYPROC_NAMESPACE": namespace,
            "PAYPROC_DATABASE_URL": db.url,
            "PAYPROC_ADMIN_TOKEN": TOKEN,
            "PAYPROC_ADMIN_REPLAY_RATE": "100000",
            "PAYPROC_METRICS_BIND": "off",
            "PAYPROC_LOG_LEVEL": "INFO",
        }
        await migrate(env)
        await declare_topology(connection, Names(namespace), delays, 10)
        insert_rate = await asyncio.to_thread(insert_entries, db, namespace, entries)
        log(f"{label} ({db_kind}): {entries} entries inserted at {insert_rate:,.0f} rows/s")
        server = Proc(
            "admin",
            python("-m", "processor", "admin", "--bind", "127.0.0.1:0", "--no-ingest"),
            env,
        )
        url = await server.wait_for_line(_LISTENING, within=60)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=request_timeout
        ) as client:
            yield AdminUnderTest(namespace, connection, client, insert_rate)
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            await delete_topology(connection, Names(namespace), delays)
        await connection.close()
        db.drop()


async def measure(db_kind: str, entries: int, requests: int, replay: int) -> AdminFigures:
    from retry.names import Names

    async with admin_under_test(db_kind, "admin", entries, request_timeout=30) as admin:
        client = admin.client
        await _timed_gets(client, "/dlq/messages", {}, 10)  # warm-up
        first = await _timed_gets(client, "/dlq/messages", {}, requests)
        filtered = await _timed_gets(
            client, "/dlq/messages", {"reason": "gateway_rejected"}, requests
        )
        merchant = await _timed_gets(
            client, "/dlq/messages", {"merchant_id": "m_7", "status": "parked"}, requests
        )
        deep = await _deep_pages(client, min(requests, 100))
        stats_call = await _timed_gets(client, "/dlq/stats", {}, max(requests // 10, 5))
        started = time.perf_counter()
        response = await client.post(
            "/dlq/replay",
            json={"reason": "retries_exhausted", "limit": replay},
            timeout=300,
        )
        if response.status_code != 202:
            raise BenchError(f"bulk replay answered {response.status_code}: {response.text[:300]}")
        job = await _published(client, response.json()["id"], started + 300)
        replay_seconds = time.perf_counter() - started
        replayed = int(job["published"])
        depth, _ = await queue_depth(admin.connection, Names(admin.namespace).requests)
        return AdminFigures(
            db=db_kind,
            entries=entries,
            insert_rate=round(admin.insert_rate),
            list=first,
            list_filtered=filtered,
            list_merchant=merchant,
            list_deep=deep,
            stats=stats_call,
            replay_requested=replay,
            replayed=replayed,
            replay_seconds=round(replay_seconds, 3),
            replay_rate=round(replayed / replay_seconds) if replay_seconds > 0 else 0,
            replay_queue_depth=depth,
            job_batch=job_batch(float(job["rate"])),
        )


async def run(
    entries: int, requests: int, replay: int, dbs: tuple[str, ...] = ("postgres", "sqlite")
) -> AdminResults:
    """Every database in ``dbs``; ``available=False`` (and why) when there is no admin."""
    why = available()
    if why is not None:
        log(f"admin: not available: {why}")
        return AdminResults(available=False, reason=why)
    by_db = await each_database(
        "admin", dbs, lambda db: measure(db, entries, requests, replay), AdminFailed
    )
    return AdminResults(available=True, by_db=by_db)
