"""The targets: what each benchmark figure is held to, as a table of ``Target`` rows (one
section per scenario, listed in ``SECTIONS``) that ``bench.judging.evaluate`` judges against a
run's ``Results``; ``bench.judging`` explains what a target reads and needs. When a target is
missed, its ``cause`` (``bench.causes``) explains the gap from what the run measured.

Adding a target is one ``Target(...)`` in the section of ``table`` its scenario belongs to,
for example an absolute bound on a rate the scenario recorded as a ``Figure``::

    Target(
        "replay job >= 1,000 entries/s at 100,000 entries (postgres)",
        "replay_job",
        value=figure_rate("replay_job.postgres"),
        need=at_least(1000.0),
    )
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from bench import causes
from bench.common import LATENCY_SHAPES, latency_key, workers_phrase
from bench.figures import NO_DELAYS, RateAccuracy, Run
from bench.judging import (
    Need,
    NotMeasured,
    Target,
    Verdict,
    at_least,
    at_most,
    below,
    evaluate,
    not_measured,
    unmeasured,
)
from bench.quantities import (
    Shown,
    admin_value,
    console_value,
    constant,
    figure_rate,
    first_of,
    jobs_value,
    lowest,
    run_count,
    run_value,
    whole_run,
)
from bench.results import CONSOLE_TARGET_P95_MS, AdminFigures, Plan, ReplayJobFigures, Results

__all__ = [
    "SECTIONS",
    "Need",
    "NotMeasured",
    "Target",
    "Verdict",
    "at_least",
    "at_most",
    "below",
    "evaluate",
    "table",
    "verdicts",
]

CEILING = "ceiling.quorum.consume"


def zero_targets(plan: Plan) -> list[Target]:
    """0 ms gateway: payproc 2 workers against each peer, 1 worker against the ceiling."""
    targets = []
    for db, _reps in plan.zero_dbs:
        two = f"zero.{db}.payproc2"
        for peer, factor in (("dramatiq", 2.0), ("celery", 3.0)):
            targets.append(
                Target(
                    f"0 ms, {db}: payproc 2 workers >= {factor:g}x {peer.title()}",
                    "zero",
                    value=figure_rate(two),
                    reference=figure_rate(f"zero.{db}.{peer}"),
                    need=at_least(factor),
                    measured="{value} vs {reference} = {ratio} ({runs})",
                    fields=(("runs", run_count(two)),),
                    cause=partial(causes.vs_peer, db, peer, factor),
                    missing=not_measured(),
                )
            )
        targets.append(
            Target(
                f"0 ms, {db}: payproc 1 worker >= 15% of bare aio-pika",
                "zero",
                value=figure_rate(f"zero.{db}.payproc1"),
                reference=figure_rate(CEILING),
                need=at_least(0.15),
                measured="{value} vs {reference} = {pct}",
                cause=partial(causes.one_worker, db),
            )
        )
    return targets


def latency_targets(plan: Plan) -> list[Target]:
    """50 ms gateway: each payproc shape against Dramatiq and against its own bound, the
    lower of prefetch/latency and what the same workers do at 0 ms (the CPU's limit)."""
    db, lat = plan.latency_db, plan.latency
    targets = []
    for workers, prefetch in LATENCY_SHAPES:
        key = latency_key(workers, prefetch)
        shape = f"{lat * 1000:g} ms, {workers_phrase(workers)}, prefetch {prefetch}"
        figure = figure_rate(f"lat.{db}.{key}")
        zero_same = figure_rate(f"zero.{db}.payproc{workers}")
        bound = workers * prefetch / lat
        targets += [
            Target(
                f"{shape}: payproc >= 5x Dramatiq",
                "latency",
                value=figure,
                reference=figure_rate(f"lat.{db}.dramatiq"),
                need=at_least(5.0),
                measured="{value} vs {reference} = {ratio}",
                cause=partial(causes.five_x, db, key, workers),
            ),
            Target(
                f"{shape}: >= 85% of prefetch/latency ({bound:,.0f}/s) until the CPU limits "
                f"it (0 ms {workers}-worker figure {{cpu_limit}})",
                "latency",
                value=figure,
                reference=lowest(
                    ("prefetch/latency", constant(bound)),
                    (f"the 0 ms {workers}-worker figure", zero_same),
                ),
                need=at_least(0.85),
                measured="{value} = {pct} of {reference.label}",
                fields=(("cpu_limit", first_of(zero_same, constant(bound))),),
                cause=partial(causes.latency_bound, db, key, workers, prefetch, lat),
                missing=not_measured(label=shape),
            ),
        ]
    return targets


def _goodput_missing(results: Results) -> NotMeasured:
    zero_ran = "zero" in results.scenarios
    why = "-" if zero_ran else "needs the zero scenario's 1-worker figure"
    return NotMeasured(why, label="30% transient: goodput >= 60% of zero-failure")


def _within_pct(run: Run) -> float:
    return float((run.delays or NO_DELAYS).within_pct)


def _retries(run: Run) -> float:
    return (run.delays or NO_DELAYS).retries


def retry_targets(plan: Plan) -> list[Target]:
    """30% transient failures: goodput against the zero-failure figure, retry-delay accuracy."""
    targets = [
        Target(
            "30% transient: goodput >= 60% of the zero-failure figure",
            "retries",
            value=run_value("retries.backlog", lambda run: run.goodput),
            reference=figure_rate(f"zero.{plan.retry_db}.payproc1"),
            need=at_least(0.6),
            measured="{value} vs {reference} = {pct} (whole drain)",
            cause=partial(causes.goodput, plan.retry_db),
            missing=_goodput_missing,
        )
    ]
    for key, what, cause in (
        ("retries.paced", "paced load", causes.paced_delays),
        ("retries.backlog", f"{plan.retry_count:,} backlog", causes.backlog_delays),
    ):
        targets.append(
            Target(
                f"retry-delay accuracy ({what}): every retry within its delay + 1 s",
                "retries",
                value=run_value(key, _within_pct, str),
                need=at_least(100.0),
                measured="{value}% of {retries} retries",
                fields=(("retries", run_value(key, _retries, "{:,.0f}".format)),),
                cause=cause,
            )
        )
    return targets


def memory_targets(plan: Plan) -> list[Target]:
    return [
        Target(
            "worker peak RSS <= 150 MB with a {count} backlog",
            "memory",
            value=run_value("memory", lambda run: run.rss_mb, "{:.0f}".format),
            need=at_most(150.0),
            measured="{value} MB",
            fields=(("count", run_value("memory", lambda run: run.count, "{:,.0f}".format)),),
        )
    ]


def _admin_missing(db: str, results: Results) -> NotMeasured | None:
    return unmeasured("admin", db == results.plan.admin_dbs[0], results.admin, db)


def _worst_list_p95(m: AdminFigures) -> float:
    return max(m.list.p95_ms, m.list_filtered.p95_ms, m.list_merchant.p95_ms)


def admin_targets(plan: Plan) -> list[Target]:
    """The DLQ admin API per database: list latency and bulk replay rate."""
    targets = []
    for db in plan.admin_dbs:
        targets += [
            Target(
                f"admin list p95 <= 50 ms at {{entries}} entries ({db})",
                "admin",
                value=admin_value(db, _worst_list_p95, str),
                need=at_most(50.0),
                measured="worst p95 {value} ms (first page, filtered, by merchant); deep "
                "pages p95 {deep} ms",
                fields=(
                    ("entries", admin_value(db, lambda m: m.entries, "{:,.0f}".format)),
                    ("deep", admin_value(db, lambda m: m.list_deep.p95_ms, str)),
                ),
                missing=partial(_admin_missing, db),
            ),
            Target(
                f"bulk replay >= 2,000 messages/s ({db})",
                "admin",
                value=admin_value(db, lambda m: m.replay_rate),
                need=at_least(2000.0),
                cause=partial(causes.replay, db),
            ),
        ]
    return targets


def _console_missing(db: str, results: Results) -> NotMeasured | None:
    return unmeasured("console", db == results.plan.console_dbs[0], results.console, db)


def console_targets(plan: Plan) -> list[Target]:
    """The operator console per database: its slowest page's p95 server time."""
    return [
        Target(
            f"console page p95 < {CONSOLE_TARGET_P95_MS:.0f} ms at {{entries}} entries ({db})",
            "console",
            value=console_value(db, lambda m: Shown(m.worst_p95_ms, str(m.worst_p95_ms))),
            need=below(CONSOLE_TARGET_P95_MS),
            measured="worst p95 {value} ms ({page}) of {pages} pages",
            fields=(
                ("entries", console_value(db, lambda m: Shown(m.entries, f"{m.entries:,}"))),
                ("page", console_value(db, lambda m: Shown(m.worst_p95_ms, m.worst.page))),
                ("pages", console_value(db, lambda m: Shown(len(m.pages), str(len(m.pages))))),
            ),
            cause=partial(causes.console, db),
            missing=partial(_console_missing, db),
        )
        for db in plan.console_dbs
    ]


def _pace_error(m: ReplayJobFigures) -> float:
    return abs(m.paced_measured / m.paced_rate - 1) * 100 if m.paced_rate else 100.0


def jobs_targets(plan: Plan) -> list[Target]:
    """Replay jobs: sustained rate at 100,000 entries, pacing accuracy, list p95 meanwhile."""
    targets = []
    for db in plan.jobs_dbs:
        targets += [
            Target(
                f"replay job sustained >= 2,000 entries/s at {{entries}} entries ({db})",
                "jobs",
                value=jobs_value(db, lambda m: m.sustained_rate),
                need=at_least(2000.0),
                fields=(("entries", jobs_value(db, lambda m: m.entries, "{:,.0f}".format)),),
                cause=partial(causes.replay_job, db),
            ),
            Target(
                f"paced replay job within 10% of its rate ({db})",
                "jobs",
                value=jobs_value(db, _pace_error, "{:.1f}".format),
                need=at_most(10.0),
                measured="{value}% off",
            ),
            Target(
                f"admin list p95 <= 50 ms while a replay job runs ({db})",
                "jobs",
                value=jobs_value(db, lambda m: m.list_while_running.p95_ms, str),
                need=at_most(50.0),
                measured="p95 {value} ms",
            ),
        ]
    return targets


def _double_charges(results: Results) -> float:
    figures = results.figures.values()
    return sum(r.checks.double_charged for f in figures for r in f.runs)


def _drain_runs(results: Results) -> float:
    return sum(len(f.runs) for f in results.figures.values() if f.unit != "msgs/s")


def run_targets(plan: Plan) -> list[Target]:
    """The whole run: no double charge anywhere, and the time ``make bench`` takes."""
    return [
        Target(
            "no double charge in any run",
            None,
            value=whole_run(_double_charges, "{:.0f}".format),
            need=at_most(0.0),
            measured="{value} in {drains} runs",
            fields=(("drains", whole_run(_drain_runs, "{:.0f}".format)),),
        ),
        Target(
            "`make bench` under 15 minutes",
            None,
            value=whole_run(lambda r: r.total_seconds, lambda s: f"{s / 60:.1f}"),
            need=below(900.0),
            measured="{value} min",
            plan="full",
        ),
    ]


def _figure_missing(key: str, results: Results) -> NotMeasured | None:
    """A figure that ran and failed: its row says why; one that never ran has no row."""
    figure = results.figure(key)
    if figure is None or figure.error is None:
        return None
    return NotMeasured(f"FAILED: {figure.error[:200]}")


def _limiter(get: Callable[[RateAccuracy], float]) -> Callable[[Run], float]:
    return lambda run: get(run.limiter) if run.limiter is not None else float("nan")


def rate_limit_targets(plan: Plan) -> list[Target]:
    """``PAYPROC_GATEWAY_RATE_LIMIT`` per shape: the gateway's rate within +-10% of the
    limit, and under 1% of its requests refused by its own limiter (429)."""
    targets = []
    for key, shape in plan.rate_limit_shapes:
        name = f"rate limit {plan.rate_limit:g}/s, {shape}"
        missing = partial(_figure_missing, key)
        targets += [
            Target(
                f"{name}: gateway rate within +-10% of the limit",
                "rate_limit",
                value=run_value(key, _limiter(lambda a: a.deviation_pct), "{:.1f}".format),
                need=at_most(10.0),
                measured="{rate} = {accuracy}% of the limit",
                fields=(
                    ("rate", run_value(key, _limiter(lambda a: a.rate), "{:.1f}/s".format)),
                    ("accuracy", run_value(key, _limiter(lambda a: a.accuracy_pct), str)),
                ),
                cause=partial(causes.rate_accuracy, key),
                missing=missing,
            ),
            Target(
                f"{name}: gateway 429s < 1% of requests",
                "rate_limit",
                value=run_value(key, _limiter(lambda a: a.gateway_429_pct), str),
                need=below(1.0),
                measured="{value}% ({refused} of {requests} requests)",
                fields=(
                    ("refused", run_value(key, _limiter(lambda a: a.gateway_429), str)),
                    (
                        "requests",
                        run_value(key, lambda r: r.checks.gateway_requests, "{:,.0f}".format),
                    ),
                ),
                cause=partial(causes.rate_refused, key),
                missing=missing,
            ),
        ]
    return targets


SECTIONS: tuple[Callable[[Plan], list[Target]], ...] = (
    zero_targets,
    latency_targets,
    retry_targets,
    memory_targets,
    rate_limit_targets,
    admin_targets,
    console_targets,
    jobs_targets,
    run_targets,
)


def table(plan: Plan) -> list[Target]:
    """Every target of a run of ``plan``, in the order the report lists them."""
    return [target for section in SECTIONS for target in section(plan)]


def verdicts(results: Results) -> list[Verdict]:
    """The targets table of a run: one verdict per target that has a row."""
    return [v for t in table(results.plan) if (v := evaluate(t, results)) is not None]
