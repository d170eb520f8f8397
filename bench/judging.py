"""How a target is judged: a ``Target`` names a measured ``value`` and, for a relative target,
a ``reference`` (another figure of the same run; both are ``bench.quantities``), and needs
``value >= bound x reference`` (``at_least``), ``<=`` (``at_most``) or ``<`` (``below``);
without a reference the bound is absolute. Its texts are templates filled with ``{value}``,
``{reference}``, ``{ratio}`` (``2.32x``), ``{pct}`` (``17%``) and any named ``fields``. When
something it reads was not measured, the row is left out, or (with ``missing``) says "not
measured" and why. When a target is missed, its ``cause`` explains the gap from what the run
measured. ``evaluate`` turns one target and a run's ``Results`` into its ``Verdict`` row.

The table of targets itself is ``bench.targets``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.formatting import pct, ratio
from bench.quantities import DASH, Quantity, Shown
from bench.results import AdminFailed, AdminResults, ConsoleResults, Results


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


def unmeasured(
    name: str, first: bool, scenario: AdminResults | ConsoleResults | None, db: str
) -> NotMeasured | None:
    """The row of a per-database target that ``db`` could not measure: the scenario is not
    available (one row for all its targets, under its ``first`` database) or failed on it."""
    if scenario is None:
        return None
    if not scenario.available:
        if not first:
            return None
        return NotMeasured(f"{name}: not available", scenario.reason or "", f"{name} targets")
    figures = scenario.by_db.get(db)
    if isinstance(figures, AdminFailed):
        return NotMeasured(figures.error[:200], label=f"{name} ({db})")
    return None


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
