"""The benchmark's targets table, judged on a small fabricated run: which targets are met,
which show a gap (with the measured cause), the ratios the table prints, and the rows left
out or marked "not measured" when a figure is missing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench.figures import DrainChecks, Figure, RateAccuracy, RetryDelays, Run
from bench.quantities import constant
from bench.rate_limit import configurations
from bench.report import exit_status, render
from bench.results import (
    FULL,
    QUICK,
    RATE_LIMIT_SHAPES,
    AdminFailed,
    AdminFigures,
    AdminResults,
    ConsoleFigures,
    ConsoleResults,
    Latencies,
    PageTime,
    ReplayJobFigures,
    Results,
)
from bench.targets import Target, Verdict, at_least, at_most, evaluate, verdicts

PLAN = replace(FULL, zero_dbs=(("postgres", 1),), admin_dbs=("postgres", "sqlite"))
ALL = ("ceiling", "zero", "latency", "retries", "memory", "admin", "sync")
CPU = {"busy": 90.0, "workers": 50.0, "seconds": 10.0, "workers_cpu_s": 5.0, "broker_cpu_s": 1.0}


def figure(key: str, rate: float, *, runs: int = 1, **measured: Any) -> Figure:
    """``runs`` drains of 1,000 payments at ``rate``/s, no double charge."""
    made = [
        Run(
            key,
            1000,
            1000 / rate,
            DrainChecks(statuses={"succeeded": 1000}),
            cpu=dict(CPU),
            **measured,
        )
        for _ in range(runs)
    ]
    return Figure(key, key, runs=made)


def latencies(p95: float) -> Latencies:
    return Latencies(p50_ms=p95 / 2, p95_ms=p95, max_ms=2 * p95, n=200)


def admin(replay_rate: int, list_p95: float) -> AdminFigures:
    return AdminFigures(
        db="postgres",
        entries=100_000,
        insert_rate=50_000,
        list=latencies(list_p95),
        list_filtered=latencies(3.0),
        list_merchant=latencies(4.0),
        list_deep=latencies(6.5),
        stats=latencies(100.0),
        replay_requested=3000,
        replayed=3000,
        replay_seconds=1.0,
        replay_rate=replay_rate,
        replay_queue_depth=3000,
        job_batch=500,
    )


@pytest.fixture
def results() -> Results:
    run = Results(PLAN, scenarios=ALL, total_seconds=700.0)
    for key, rate in (
        ("ceiling.quorum.consume", 10_000),
        ("zero.postgres.payproc1", 1_600),
        ("zero.postgres.dramatiq", 1_000),
        ("zero.postgres.celery", 800),
        ("lat.postgres.payproc_p100", 1_400),  # 1 worker: bound min(2,000, 1,600)
        ("lat.postgres.payproc_p300", 1_300),  # 81% of the 0 ms 1-worker figure
        ("lat.postgres.dramatiq", 280),
    ):
        run.add(figure(key, rate))
    run.add(figure("zero.postgres.payproc2", 2_200, runs=3))
    run.add(figure("retries.backlog", 1_000, goodput=1_000.0, steady_rate=1_200))
    paced = RetryDelays(retries=1_299, within_pct=100.0)
    run.add(figure("retries.paced", 300, delays=paced))
    run.add(figure("memory", 1_700, rss_mb=160.0))
    run.admin = AdminResults(
        available=True,
        by_db={"postgres": admin(3_600, 4.5), "sqlite": AdminFailed("sqlite", "BenchError: x")},
    )
    return run


def by_name(results: Results) -> dict[str, Verdict]:
    return {v.target: v for v in verdicts(results)}


def test_relative_targets_print_their_ratio_and_judge_it(results: Results) -> None:
    table = by_name(results)

    dramatiq = table["0 ms, postgres: payproc 2 workers >= 2x Dramatiq"]
    assert dramatiq.met is True
    assert dramatiq.measured == "2,200/s vs 1,000/s = 2.20x (median of 3)"

    celery = table["0 ms, postgres: payproc 2 workers >= 3x Celery"]
    assert celery.met is False
    assert celery.measured == "2,200/s vs 800/s = 2.75x (median of 3)"
    assert "3x Celery on this machine needs about" in celery.cause  # the cores were 90% busy
    assert "| **gap** |" in celery.row()

    one = table["0 ms, postgres: payproc 1 worker >= 15% of bare aio-pika"]
    assert (one.met, one.measured) == (True, "1,600/s vs 10,000/s = 16%")


def test_latency_bound_is_the_lower_of_prefetch_over_latency_and_the_cpu(
    results: Results,
) -> None:
    table = by_name(results)
    limit = "(0 ms 1-worker figure 1,600/s)"

    p100 = table[
        f"50 ms, 1 worker, prefetch 100: >= 85% of prefetch/latency (2,000/s) until the CPU "
        f"limits it {limit}"
    ]
    assert p100.met is True
    assert p100.measured == "1,400/s = 88% of the 0 ms 1-worker figure"
    assert p100.cause == ""

    p300 = table[
        f"50 ms, 1 worker, prefetch 300: >= 85% of prefetch/latency (6,000/s) until the CPU "
        f"limits it {limit}"
    ]
    assert p300.met is False
    assert p300.measured == "1,300/s = 81% of the 0 ms 1-worker figure"
    assert "ms in flight, 50 ms of it at the gateway" in p300.cause

    five_x = table["50 ms, 1 worker, prefetch 100: payproc >= 5x Dramatiq"]
    assert (five_x.met, five_x.measured) == (True, "1,400/s vs 280/s = 5.00x")


def test_without_the_zero_figure_the_bound_is_prefetch_over_latency(results: Results) -> None:
    del results.figures["zero.postgres.payproc1"]

    table = by_name(results)

    p100 = table[
        "50 ms, 1 worker, prefetch 100: >= 85% of prefetch/latency (2,000/s) until the CPU "
        "limits it (0 ms 1-worker figure 2,000/s)"
    ]
    assert (p100.met, p100.measured) == (False, "1,400/s = 70% of prefetch/latency")
    assert "0 ms, postgres: payproc 1 worker >= 15% of bare aio-pika" not in table
    goodput = table["30% transient: goodput >= 60% of zero-failure"]
    assert (goodput.met, goodput.measured) == (None, "-")


def test_absolute_targets_and_missing_figures(results: Results) -> None:
    table = by_name(results)

    assert table["worker peak RSS <= 150 MB with a 1,000 backlog"].met is False
    assert table["worker peak RSS <= 150 MB with a 1,000 backlog"].measured == "160 MB"
    paced = table["retry-delay accuracy (paced load): every retry within its delay + 1 s"]
    assert (paced.met, paced.measured) == (True, "100.0% of 1,299 retries")
    listing = table["admin list p95 <= 50 ms at 100,000 entries (postgres)"]
    assert listing.met is True
    assert listing.measured == (
        "worst p95 4.5 ms (first page, filtered, by merchant); deep pages p95 6.5 ms"
    )
    assert table["bulk replay >= 2,000 messages/s (postgres)"].met is True
    failed = table["admin (sqlite)"]
    assert (failed.met, failed.measured) == (None, "BenchError: x")
    assert "bulk replay >= 2,000 messages/s (sqlite)" not in table
    goodput = table["30% transient: goodput >= 60% of the zero-failure figure"]
    assert (goodput.met, goodput.measured) == (True, "1,000/s vs 1,600/s = 62% (whole drain)")
    assert table["no double charge in any run"].measured == "0 in 13 runs"
    assert table["`make bench` under 15 minutes"].met is True


def test_a_slow_bulk_replay_explains_the_gap_by_the_replay_job_rounds(results: Results) -> None:
    assert results.admin is not None
    results.admin.by_db["postgres"] = admin(1_600, 4.5)

    replay = by_name(results)["bulk replay >= 2,000 messages/s (postgres)"]

    assert replay.met is False
    assert replay.cause.startswith("the replay job publishes in rounds of 500 entries")
    assert "(0.62 ms per entry here)" in replay.cause


def test_a_slow_replay_job_explains_the_gap_by_its_rounds_per_entry(results: Results) -> None:
    results = replace(results, scenarios=(*ALL, "jobs"))
    results.replay_jobs = {
        "postgres": ReplayJobFigures(
            db="postgres",
            entries=100_000,
            paced_rate=500.0,
            paced_measured=505.0,
            paced_published=3_000,
            sustained_rate=1_250.0,
            sustained_published=97_000,
            sustained_seconds=77.6,
            list_while_running=latencies(30.0),
            job_view_while_running=latencies(30.0),
            queue_depth=100_000,
        )
    }

    job = by_name(results)["replay job sustained >= 2,000 entries/s at 100,000 entries (postgres)"]

    assert job.met is False
    assert job.cause.startswith("the replay job publishes in rounds of 500 entries")
    assert "(0.80 ms per entry over 97,000 entries;" in job.cause


def test_a_missing_peer_figure_is_not_measured_and_the_5x_row_is_left_out(
    results: Results,
) -> None:
    del results.figures["zero.postgres.dramatiq"]
    del results.figures["lat.postgres.dramatiq"]

    table = by_name(results)

    missing = table["0 ms, postgres: payproc 2 workers >= 2x Dramatiq"]
    assert (missing.met, missing.measured) == (None, "-")
    assert not [name for name in table if "5x Dramatiq" in name]


def test_targets_of_scenarios_that_did_not_run_have_no_row(results: Results) -> None:
    results.scenarios = ("memory",)

    names = list(by_name(results))

    assert names == [
        "worker peak RSS <= 150 MB with a 1,000 backlog",
        "no double charge in any run",
        "`make bench` under 15 minutes",
    ]


def test_the_time_limit_is_judged_only_on_the_full_plan(results: Results) -> None:
    results.plan = replace(QUICK, zero_dbs=PLAN.zero_dbs)

    limit = by_name(results)["`make bench` under 15 minutes"]

    assert (limit.met, limit.measured, limit.cause) == (None, "11.7 min", "quick plan")


def test_a_new_target_is_one_row_of_data(results: Results) -> None:
    absolute = Target("p95 <= 2 ms", None, value=constant(3.0, str), need=at_most(2.0))
    relative = Target(
        "twice the reference",
        None,
        value=constant(5.0, str),
        reference=constant(2.0, str),
        need=at_least(2.0),
        measured="{value} vs {reference} = {ratio}",
    )

    assert evaluate(absolute, results) == Verdict("p95 <= 2 ms", "3.0", False)
    assert evaluate(relative, results) == Verdict("twice the reference", "5.0 vs 2.0 = 2.50x", True)


def test_the_report_holds_both_tables_and_fails_on_a_double_charge(results: Results) -> None:
    text = render(results)

    assert "| 2 | payproc, 2 workers, postgres, 0 ms gateway | 2,200 payments/s |" in text
    assert "| 0 ms, postgres: payproc 2 workers >= 3x Celery |" in text
    assert exit_status(results) == 0
    results.figures["memory"].runs[0].checks = DrainChecks(double_charged=1)
    assert exit_status(results) == 1
    assert by_name(results)["no double charge in any run"].met is False


def rate_figure(key: str, rate: float, refused: int, requests: int = 2000) -> Figure:
    """One rate-limit run: the gateway saw ``rate``/s against 200/s, ``refused`` 429s."""
    limiter = RateAccuracy(
        limit=200.0,
        rate=rate,
        accuracy_pct=round(100 * rate / 200.0, 1),
        gateway_429=refused,
        gateway_429_pct=round(100 * refused / requests, 2),
    )
    checks = DrainChecks(gateway_requests=requests, statuses={"succeeded": 1920})
    run = Run(key, round(rate * 8), 8.0, checks, limiter=limiter)
    return Figure(key, key, runs=[run], unit="gateway requests/s")


def test_rate_limit_targets_hold_the_rate_within_ten_percent_and_429s_under_one(
    results: Results,
) -> None:
    results.scenarios = ("rate_limit",)
    results.add(rate_figure("rate_limit.1w", 196.4, 0))
    results.add(rate_figure("rate_limit.2w", 224.0, 6))  # 112% of the limit
    results.add(rate_figure("rate_limit.4w", 182.0, 30))  # 91%, but 1.5% refused
    results.add(Figure("rate_limit.2w.churn", "churn", error="BenchError: not every payment"))

    table = by_name(results)

    one = "rate limit 200/s, 1 worker"
    assert table[f"{one}: gateway rate within +-10% of the limit"] == Verdict(
        f"{one}: gateway rate within +-10% of the limit", "196.4/s = 98.2% of the limit", True
    )
    assert table[f"{one}: gateway 429s < 1% of requests"].met is True
    above = table["rate limit 200/s, 2 workers: gateway rate within +-10% of the limit"]
    assert (above.met, above.measured) == (False, "224.0/s = 112.0% of the limit")
    assert "exceeded the limit" in above.cause
    four = "rate limit 200/s, 4 workers"
    assert table[f"{four}: gateway rate within +-10% of the limit"].met is True
    refused = table[f"{four}: gateway 429s < 1% of requests"]
    assert (refused.met, refused.measured) == (False, "1.5% (30 of 2,000 requests)")
    churn = table[
        "rate limit 200/s, 2 -> 3 -> 2 workers (one added, one killed): gateway 429s "
        "< 1% of requests"
    ]
    assert (churn.met, churn.measured) == (None, "FAILED: BenchError: not every payment")
    text = render(results)
    assert "| 7 | gateway rate limit 200/s, 1 worker: rate the gateway saw | 196.4/s |" in text


def test_rate_limit_shapes_are_the_figures_the_scenario_measures() -> None:
    assert [c.key for c in configurations()] == [key for key, _shape in RATE_LIMIT_SHAPES]


def page(name: str, p50: float, p95: float) -> PageTime:
    """One console page fetched 50 times: its median, p95 and a max of twice the p95."""
    return PageTime(name, f"/ui/{name}", Latencies(p50_ms=p50, p95_ms=p95, max_ms=2 * p95, n=50))


def console(db: str, *pages: PageTime) -> ConsoleFigures:
    return ConsoleFigures(db, 100_000, list(pages))


CONSOLE = "console page p95 < 200 ms at 100,000 entries"


def test_console_target_is_met_per_database_and_a_failed_one_says_why(
    results: Results,
) -> None:
    results.scenarios = ("console",)
    results.console = ConsoleResults(
        available=True,
        by_db={
            "postgres": console(
                "postgres", page("overview", 20.0, 35.5), page("groups", 30.0, 61.2)
            ),
            "sqlite": AdminFailed("sqlite", "BenchError: GET /ui/groups answered 500"),
        },
    )

    table = by_name(results)

    assert list(table)[:2] == [f"{CONSOLE} (postgres)", "console (sqlite)"]
    met = table[f"{CONSOLE} (postgres)"]
    assert (met.met, met.measured, met.cause) == (
        True,
        "worst p95 61.2 ms (groups) of 2 pages",
        "",
    )
    failed = table["console (sqlite)"]
    assert (failed.met, failed.measured) == (None, "BenchError: GET /ui/groups answered 500")
    text = render(results)
    assert (
        "| 6 | console page: groups, 100,000 entries, postgres | p50 30.0 ms / p95 61.2 ms | "
        "50 requests | max 122.4 ms | GET /ui/groups |"
    ) in text
    assert "| 6 | console (sqlite) | - | - | - | FAILED: BenchError: GET /ui/groups" in text


def test_console_gap_names_the_slow_pages_and_whether_every_request_is_slow(
    results: Results,
) -> None:
    results.scenarios = ("console",)
    results.background_busy = 40.0
    results.console = ConsoleResults(
        available=True,
        by_db={
            "postgres": console(
                "postgres",
                page("overview", 20.0, 35.5),
                page("entries, deep pages", 40.0, 230.0),
                page("groups", 150.0, 420.5),
            ),
            "sqlite": console(  # the bound itself is a gap
                "sqlite", page("overview", 12.0, 200.0), page("groups", 15.0, 80.0)
            ),
        },
    )

    table = by_name(results)

    slow = table[f"{CONSOLE} (postgres)"]
    assert (slow.met, slow.measured) == (False, "worst p95 420.5 ms (groups) of 3 pages")
    assert slow.cause.startswith(
        "2 of 3 pages at or over 200 ms p95 at 100,000 entries: groups p95 420.5 ms (p50 "
        "150.0, max 841.0), entries, deep pages p95 230.0 ms (p50 40.0, max 460.0); the "
        "median of groups is slow too"
    )
    tail = table[f"{CONSOLE} (sqlite)"]
    assert (tail.met, tail.measured) == (False, "worst p95 200.0 ms (overview) of 2 pages")
    assert "a tail of slow responses" in tail.cause
    assert "40% busy with other load" in tail.cause
    assert "| **gap** |" in tail.row()


def test_an_unavailable_console_is_one_row_for_all_its_targets(results: Results) -> None:
    results.scenarios = ("console",)
    results.console = ConsoleResults(available=False, reason="the console is not importable")

    table = by_name(results)

    assert [name for name in table if "console" in name] == ["console targets"]
    row = table["console targets"]
    assert (row.met, row.measured, row.cause) == (
        None,
        "console: not available",
        "the console is not importable",
    )
    assert "| 6 | console: not available | - | - | - | the console is not importable |" in (
        render(results)
    )
