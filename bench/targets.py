"""The targets: what each benchmark figure is held to, as a table of ``Target`` rows that
one small function (``evaluate``) judges against a run's ``Results``.

A target reads a measured ``value`` and, for a relative target, a ``reference`` (another
figure of the same run; both are ``bench.quantities``), and needs ``value >= bound x
reference`` (``at_least``), ``<=`` (``at_most``) or ``<`` (``below``); without a reference
the bound is absolute. Its texts are templates filled with ``{value}``, ``{reference}``,
``{ratio}`` (``2.32x``), ``{pct}`` (``17%``) and any named ``fields``. When something it
reads was not measured, the row is left out, or (with ``missing``) says "not measured" and
why. When a target is missed, its ``cause`` (``bench.causes``) explains the gap from what
the run measured.

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

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from bench import causes
from bench.common import LATENCY_SHAPES, latency_key, workers_phrase
from bench.figures import NO_DELAYS, Run
from bench.formatting import pct, rate, ratio
from bench.quantities import (
    DASH,
    Quantity,
    Shown,
    Text,
    admin_value,
    constant,
    figure_rate,
    first_of,
    lowest,
    run_count,
    run_value,
    whole_run,
)
from bench.results import AdminFailed, AdminFigures, Plan, ReplayJobFigures, Results

CEILING = "ceiling.quorum.consume"


@dataclass(frozen=True)
class Need:
    """``value op bound x reference``."""

    op: str
    bound: float

    def met(self, value: float, reference: float) -> bool:
        compare = {">=": operator.ge, "<=": operator.le, "<": operator.lt}[self.op]
        return bool(compare(value, self.bound * reference))


def at_least(bound: float) -> Need:
    return Need(">=", bound)


def at_most(bound: float) -> Need:
    return Need("<=", bound)


def below(bound: float) -> Need:
    return Need("<", bound)


@dataclass(frozen=True)
class NotMeasured:
    """The row of a target that could not be judged: why, and under which name."""

    why: str = "-"
    cause: str = ""
    label: str | None = None


Missing = Callable[[Results], NotMeasured | None]


def not_measured(label: str | None = None) -> Missing:
    return lambda _results: NotMeasured(label=label)


@dataclass(frozen=True)
class Target:
    """One requirement on the run's figures (see the module docstring)."""

    name: str
    scenario: str | None  # judged only when this scenario ran; None: always
    value: Quantity
    need: Need
    reference: Quantity | None = None
    measured: str = "{value}"
    fields: tuple[tuple[str, Quantity], ...] = ()
    cause: Callable[[Results], str] | None = None
    missing: Missing | None = None  # None: the row is left out when not measured
    plan: str | None = None  # judged only in this plan; others show it "not measured"


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: could not be measured
    cause: str = ""

    def row(self) -> str:
        verdict = "met" if self.met else ("not measured" if self.met is None else "**gap**")
        return f"| {self.target} | {self.measured} | {verdict} | {self.cause or '-'} |"


class _Fields(dict[str, object]):
    def __missing__(self, key: str) -> Shown:
        return DASH


def _fill(template: str, fields: Mapping[str, object]) -> str:
    return template.format_map(_Fields(fields))


def evaluate(target: Target, results: Results) -> Verdict | None:
    """The target's row for this run, or ``None`` when it has no row."""
    if target.scenario is not None and target.scenario not in results.scenarios:
        return None
    fields: dict[str, object] = {n: q(results) or DASH for n, q in target.fields}
    value = target.value(results)
    reference = Shown(1.0, "1") if target.reference is None else target.reference(results)
    if value is None or reference is None:
        gap = target.missing(results) if target.missing is not None else None
        if gap is None:
            return None
        return Verdict(gap.label or _fill(target.name, fields), gap.why, None, gap.cause)
    fields |= {
        "value": value,
        "reference": reference,
        "ratio": ratio(value.number, reference.number),
        "pct": pct(value.number, reference.number),
    }
    name, measured = _fill(target.name, fields), _fill(target.measured, fields)
    if target.plan is not None and results.plan.name != target.plan:
        return Verdict(name, measured, None, f"{results.plan.name} plan")
    met = target.need.met(value.number, reference.number)
    cause = "" if met or target.cause is None else target.cause(results)
    return Verdict(name, measured, met, cause)


# ---- the table ------------------------------------------------------------------------------


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
    admin = results.admin
    if admin is None:
        return None
    if not admin.available:  # one row for the whole scenario, under the first database
        if db != results.plan.admin_dbs[0]:
            return None
        return NotMeasured("admin: not available", admin.reason, label="admin targets")
    figures = admin.by_db.get(db)
    if isinstance(figures, AdminFailed):
        return NotMeasured(figures.error[:200], label=f"admin ({db})")
    return None


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


def _jobs_value(db: str, get: Callable[[ReplayJobFigures], float], text: Text = rate) -> Quantity:
    """A number the replay-job scenario measured on ``db``."""

    def read(results: Results) -> Shown | None:
        figures = (results.replay_jobs or {}).get(db)
        if not isinstance(figures, ReplayJobFigures):
            return None
        value = get(figures)
        return Shown(value, text(value))

    return read


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
                value=_jobs_value(db, lambda m: m.sustained_rate),
                need=at_least(2000.0),
                fields=(("entries", _jobs_value(db, lambda m: m.entries, "{:,.0f}".format)),),
            ),
            Target(
                f"paced replay job within 10% of its rate ({db})",
                "jobs",
                value=_jobs_value(db, _pace_error, "{:.1f}".format),
                need=at_most(10.0),
                measured="{value}% off",
            ),
            Target(
                f"admin list p95 <= 50 ms while a replay job runs ({db})",
                "jobs",
                value=_jobs_value(db, lambda m: m.list_while_running.p95_ms, str),
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


SECTIONS: tuple[Callable[[Plan], list[Target]], ...] = (
    zero_targets,
    latency_targets,
    retry_targets,
    memory_targets,
    admin_targets,
    jobs_targets,
    run_targets,
)


def table(plan: Plan) -> list[Target]:
    """Every target of a run of ``plan``, in the order the report lists them."""
    return [target for section in SECTIONS for target in section(plan)]


def verdicts(results: Results) -> list[Verdict]:
    """The targets table of a run: one verdict per target that has a row."""
    return [v for t in table(results.plan) if (v := evaluate(t, results)) is not None]
