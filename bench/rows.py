"""The results table: one markdown row per measured configuration, with its median, spread,
ratio to what it is compared with, and its checks (double charges, CPU split by owner).

``SECTIONS`` lists one function per scenario, in table order; a new scenario adds its own
function there. Rows only describe what was measured: whether a figure meets its target is
``bench.targets``'s job.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.common import LATENCY_SHAPES, latency_key, workers_phrase
from bench.figures import NO_DELAYS, Figure
from bench.formatting import checks, cost, cpu_split, pct, rate, ratio, spread
from bench.results import AdminFailed, ReplayJobsFailed, Results, SyncFailed

PEERS = ("dramatiq", "celery")


def figure_row(
    num: str, what: str, figure: Figure | None, vs: str = "", notes: str = ""
) -> list[str]:
    """The row of one figure (none when the figure never ran): median, spread, ratio, notes."""
    if figure is None:
        return []
    median = f"{figure.rate:,.0f} {figure.unit}" if figure.ok else "-"
    note = "; ".join(x for x in (checks(figure) if figure.unit != "msgs/s" else "", notes) if x)
    if figure.error and figure.unit == "msgs/s":
        note = f"FAILED: {figure.error[:300]}"
    return [f"| {num} | {what} | {median} | {spread(figure)} | {vs or '-'} | {note or '-'} |"]


def ceiling_rows(results: Results) -> list[str]:
    return [
        *figure_row(
            "1",
            "bare aio-pika, quorum queue: consume + manual ack (prefetch 500)",
            results.figure("ceiling.quorum.consume"),
            "the ceiling",
        ),
        *figure_row(
            "1",
            "bare aio-pika, quorum queue: confirmed persistent publish (500 in flight)",
            results.figure("ceiling.quorum.publish"),
        ),
        *figure_row(
            "1",
            "bare aio-pika, classic queue (the peers' kind): consume + ack",
            results.figure("ceiling.classic.consume"),
            "reference",
        ),
        *figure_row(
            "1",
            "bare aio-pika, classic queue: confirmed persistent publish",
            results.figure("ceiling.classic.publish"),
            "reference",
        ),
    ]


def _zero_vs(results: Results, db: str, key: str, figure: Figure) -> str:
    """The ratio column of a 0 ms row: share of the ceiling, or payproc against the peers."""
    ceiling = results.measured("ceiling.quorum.consume")
    one = results.measured(f"zero.{db}.payproc1")
    two = results.measured(f"zero.{db}.payproc2")
    if not figure.ok:
        return ""
    if key == "payproc1" and ceiling is not None:
        return f"{pct(figure.rate, ceiling.rate)} of ceiling"
    if key == "payproc2":
        peers = {p: results.measured(f"zero.{db}.{p}") for p in PEERS}
        vs = ", ".join(
            f"{ratio(figure.rate, p.rate)} {name.title()}"
            for name, p in peers.items()
            if p is not None
        )
        if one is not None:
            vs += f", {ratio(figure.rate, one.rate)} 1 worker"
        return vs
    if key in PEERS and two is not None:
        return f"payproc 2w = {ratio(two.rate, figure.rate)}"
    return ""


def zero_rows(results: Results) -> list[str]:
    rows: list[str] = []
    for db, _reps in results.plan.zero_dbs:
        for key, num, what in (
            ("payproc1", "2", f"payproc, 1 worker, {db}, 0 ms gateway"),
            ("payproc2", "2", f"payproc, 2 workers, {db}, 0 ms gateway"),
            ("dramatiq", "3", f"Dramatiq 2 proc x 8 threads, {db}, 0 ms gateway"),
            ("celery", "3", f"Celery threads x 16 (prefetch 64, acks_late), {db}, 0 ms gateway"),
        ):
            figure = results.figure(f"zero.{db}.{key}")
            if figure is None:
                continue
            run = figure.median_run()
            notes = ""
            if run is not None:
                notes = f"{cost(run)}; peak RSS {run.rss_mb:.0f} MB; {cpu_split(run)}"
            rows += figure_row(num, what, figure, _zero_vs(results, db, key, figure), notes)
    return rows


def latency_rows(results: Results) -> list[str]:
    db, lat = results.plan.latency_db, results.plan.latency
    dramatiq = results.measured(f"lat.{db}.dramatiq")
    shapes = [
        (
            latency_key(workers, prefetch),
            workers * prefetch,
            f"payproc, {workers_phrase(workers)}, prefetch {prefetch}"
            f"{' each' if workers > 1 else ''}, {db}, {lat * 1000:g} ms gateway",
        )
        for workers, prefetch in LATENCY_SHAPES
    ]
    shapes += [
        ("dramatiq", 16, f"Dramatiq 2x8, {db}, {lat * 1000:g} ms gateway"),
        ("celery", 16, f"Celery threads x 16, {db}, {lat * 1000:g} ms gateway"),
    ]
    rows: list[str] = []
    for key, in_flight, what in shapes:
        figure = results.figure(f"lat.{db}.{key}")
        if figure is None:
            continue
        bound = in_flight / lat
        vs = f"{pct(figure.rate, bound)} of bound {bound:,.0f}/s" if figure.ok else ""
        if figure.ok and key.startswith("payproc") and dramatiq is not None:
            vs += f"; {ratio(figure.rate, dramatiq.rate)} Dramatiq"
        run = figure.median_run()
        notes = f"{cost(run)}; {cpu_split(run)}" if run is not None else ""
        rows += figure_row("4", what, figure, vs, notes)
    return rows


def retry_rows(results: Results) -> list[str]:
    plan = results.plan
    rows: list[str] = []
    backlog = results.figure("retries.backlog")
    run = backlog.median_run() if backlog is not None else None
    if backlog is not None and run is not None:
        zero = results.measured(f"zero.{plan.retry_db}.payproc1")
        goodput = float(run.goodput)
        vs = f"{pct(goodput, zero.rate)} of zero-failure 1w" if zero is not None else ""
        delays = run.delays or NO_DELAYS
        notes = (
            f"steady goodput {rate(run.steady_rate)}; gateway requests "
            f"{run.checks.gateway_requests:,}; retries {delays.retries:,}, "
            f"{delays.within_pct}% within delay+1 s (late p50 "
            f"{delays.late_p50_s} s, p95 {delays.late_p95_s} s); "
            f"circuit opened {run.circuit_opens}x, {delays.spared} spared retries"
        )
        rows.append(
            f"| 5 | payproc 1 worker, {plan.retry_db}, 30% 503s, ladder "
            f"0.5/1/2 s, pre-filled backlog: goodput | {rate(goodput)} | 1 run | {vs or '-'} "
            f"| {checks(backlog)}; {notes}; {cpu_split(run)} |"
        )
    else:
        rows += figure_row("5", "payproc 1 worker, 30% transient, backlog", backlog)
    paced = results.figure("retries.paced")
    run = paced.median_run() if paced is not None else None
    if paced is not None and run is not None:
        delays = run.delays or NO_DELAYS
        rows.append(
            f"| 5 | same, paced at {plan.retry_paced_rate:g}/s (below capacity): "
            f"retry-delay accuracy | {delays.within_pct}% within delay+1 s | 1 run | "
            f"late p50 {delays.late_p50_s} s, p95 {delays.late_p95_s} s, "
            f"max {delays.late_max_s} s | {checks(paced)}; {delays.retries:,} "
            f"retries, {delays.early} early; circuit opened {run.circuit_opens}x |"
        )
    else:
        rows += figure_row("5", "payproc 1 worker, 30% transient, paced", paced)
    return rows


def memory_rows(results: Results) -> list[str]:
    mem = results.figure("memory")
    run = mem.median_run() if mem is not None else None
    if mem is None or run is None:
        return figure_row("6", "payproc worker peak RSS, 50,000 backlog", mem)
    return [
        f"| 6 | payproc worker peak RSS, 1 worker draining {run.count:,} (sqlite) | "
        f"{run.rss_mb:.0f} MB | 1 run | drained at {rate(run.rate)} | {checks(mem)} |"
    ]


def admin_rows(results: Results) -> list[str]:
    admin = results.admin
    if admin is None:
        return []
    if not admin.available:
        return [f"| 6 | admin: not available | - | - | - | {admin.reason} |"]
    rows = []
    for db, m in admin.by_db.items():
        if isinstance(m, AdminFailed):
            rows.append(f"| 6 | admin ({db}) | - | - | - | FAILED: {m.error} |")
            continue
        for what, p in (
            ("GET /dlq/messages (first page)", m.list),
            ("GET /dlq/messages?reason=gateway_rejected", m.list_filtered),
            ("GET /dlq/messages?merchant_id=m_7&status=parked", m.list_merchant),
            ("GET /dlq/messages following next_cursor (deep pages)", m.list_deep),
            ("GET /dlq/stats", m.stats),
        ):
            rows.append(
                f"| 6 | admin {what}, {m.entries:,} entries, {db} | p50 {p.p50_ms} ms / p95 "
                f"{p.p95_ms} ms | {p.n} requests | max {p.max_ms} ms | - |"
            )
        rows.append(
            f"| 6 | admin POST /dlq/replay (bulk, limit {m.replay_requested:,}), {db} | "
            f"{rate(m.replay_rate)} | 1 run | {m.replayed:,} replayed in "
            f"{m.replay_seconds} s | {m.replay_queue_depth:,} messages landed in the "
            f"request queue; token bucket raised to 100,000/s (default 500/s) |"
        )
    return rows


def console_rows(results: Results) -> list[str]:
    """The operator console (``bench.console``): one row per database and page."""
    console = results.console
    if console is None:
        return []
    if not console.available:
        return [f"| 6 | console: not available | - | - | - | {console.reason or '-'} |"]
    rows = []
    for db, m in console.by_db.items():
        if isinstance(m, AdminFailed):
            rows.append(f"| 6 | console ({db}) | - | - | - | FAILED: {m.error} |")
            continue
        for page in m.pages:
            p = page.latencies
            how = f"GET {page.path}" if page.path.startswith("/") else f'following "{page.path}"'
            rows.append(
                f"| 6 | console page: {page.page}, {m.entries:,} entries, {db} | p50 "
                f"{p.p50_ms} ms / p95 {p.p95_ms} ms | {p.n} requests | max {p.max_ms} ms | "
                f"{how} |"
            )
    return rows


def jobs_rows(results: Results) -> list[str]:
    """Replay jobs (``bench.replay_jobs``), one block per database."""
    rows = []
    for db, m in (results.replay_jobs or {}).items():
        if isinstance(m, ReplayJobsFailed):
            rows.append(f"| 6 | replay jobs ({db}) | - | - | - | FAILED: {m.error} |")
            continue
        rows += [
            f"| 6 | replay job over {m.sustained_published:,} of {m.entries:,} entries, {db} | "
            f"{rate(m.sustained_rate)} | 1 run | {m.sustained_seconds} s, first to last "
            f"publish | rate asked: 100,000/s (the mechanism's limit); "
            f"{m.queue_depth:,} messages in the request queue |",
            f"| 6 | paced replay job at {m.paced_rate:g}/s ({m.paced_published:,} entries), "
            f"{db} | {rate(m.paced_measured)} | 1 run | "
            f"{100 * (m.paced_measured / m.paced_rate - 1):+.1f}% of the rate asked | - |",
        ]
        for what, p in (
            ("GET /dlq/messages?reason=poison", m.list_while_running),
            ("GET /dlq/replay-jobs/{id}", m.job_view_while_running),
        ):
            rows.append(
                f"| 6 | admin {what} while the job runs, {db} | p50 {p.p50_ms} ms / p95 "
                f"{p.p95_ms} ms | {p.n} requests | max {p.max_ms} ms | - |"
            )
    return rows


def sync_rows(results: Results) -> list[str]:
    sync = results.sync
    if sync is None:
        return []
    if isinstance(sync, SyncFailed):
        return [
            "| + | synchronous charges via gRPC (bench.sync_rpc) | not available | - | - | "
            f"{sync.error} |"
        ]
    return [
        f"| + | {sync.name}, {sync.concurrency} callers | "
        f"{rate(float(sync.charges_per_s))} | 1 run | "
        f"p50 {sync.p50_ms} ms, p99 {sync.p99_ms} ms | "
        f"{sync.errors} errors of {sync.count} |"
    ]


def rate_limit_rows(results: Results) -> list[str]:
    """Per shape: the gateway's measured rate, its accuracy against the limit, the 429s."""
    rows: list[str] = []
    limit = results.plan.rate_limit
    for key, shape in results.plan.rate_limit_shapes:
        figure = results.figure(key)
        what = f"gateway rate limit {limit:g}/s, {shape}: rate the gateway saw"
        run = figure.median_run() if figure is not None else None
        if figure is None or run is None or run.limiter is None:
            rows += figure_row("7", what, figure)
            continue
        got = run.limiter
        statuses = run.checks.statuses
        rows.append(
            f"| 7 | {what} | {got.rate:.1f}/s | 1 run ({run.seconds:.1f} s measured) | "
            f"{got.accuracy_pct}% of the limit | gateway 429s {got.gateway_429} "
            f"({got.gateway_429_pct}% of {run.checks.gateway_requests:,} requests); "
            f"{run.checks.double_charged} double charges; "
            f"{statuses.get('succeeded', 0):,}/{sum(statuses.values()):,} succeeded |"
        )
    return rows


SECTIONS: tuple[Callable[[Results], list[str]], ...] = (
    ceiling_rows,
    zero_rows,
    latency_rows,
    retry_rows,
    memory_rows,
    admin_rows,
    console_rows,
    jobs_rows,
    sync_rows,
    rate_limit_rows,
)


def results_rows(results: Results) -> list[str]:
    """Every row of the results table, section by section."""
    return [row for section in SECTIONS for row in section(results)]
