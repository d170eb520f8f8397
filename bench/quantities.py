"""The quantities a target reads from a run's ``Results``: a figure's median rate, a number
from its median run, an admin, console or replay-job figure, a whole-run count, a constant, or the
lowest of several.

Each is a function of the results that returns a ``Shown`` (the number and the text the
table prints for it) or ``None`` when the run did not measure it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.figures import Run
from bench.formatting import rate
from bench.results import AdminFigures, ConsoleFigures, ReplayJobFigures, Results


@dataclass(frozen=True)
class Shown:
    """A number read from the results and the text the table writes for it; ``label`` names
    which of several candidates it is (see ``lowest``)."""

    number: float
    text: str
    label: str = ""

    def __format__(self, spec: str) -> str:
        return format(self.text, spec)


DASH = Shown(math.nan, "-")
Quantity = Callable[[Results], Shown | None]
"""Reads one number from the results: ``None`` when the run did not measure it."""
Text = Callable[[float], str]


def figure_rate(key: str) -> Quantity:
    """The median rate of a measured figure."""

    def read(results: Results) -> Shown | None:
        figure = results.measured(key)
        return None if figure is None else Shown(figure.rate, rate(figure.rate))

    return read


def run_count(key: str) -> Quantity:
    """How many runs a figure's median rests on (``median of 3``, ``1 run``)."""

    def read(results: Results) -> Shown | None:
        figure = results.measured(key)
        runs = len(figure.runs) if figure is not None else 0
        return Shown(runs, f"median of {runs}" if runs > 1 else "1 run")

    return read


def run_value(key: str, get: Callable[[Run], float], text: Text = rate) -> Quantity:
    """A number from the median run of a measured figure."""

    def read(results: Results) -> Shown | None:
        figure = results.measured(key)
        run = figure.median_run() if figure is not None else None
        if run is None:
            return None
        value = get(run)
        return Shown(value, text(value))

    return read


def admin_value(db: str, get: Callable[[AdminFigures], float], text: Text = rate) -> Quantity:
    """A number the admin scenario measured on ``db``."""

    def read(results: Results) -> Shown | None:
        figures = results.admin.by_db.get(db) if results.admin is not None else None
        if not isinstance(figures, AdminFigures):
            return None
        value = get(figures)
        return Shown(value, text(value))

    return read


def console_value(db: str, show: Callable[[ConsoleFigures], Shown]) -> Quantity:
    """What the console scenario measured on ``db``, as ``show`` writes it."""

    def read(results: Results) -> Shown | None:
        figures = results.console.by_db.get(db) if results.console is not None else None
        return show(figures) if isinstance(figures, ConsoleFigures) else None

    return read


def jobs_value(db: str, get: Callable[[ReplayJobFigures], float], text: Text = rate) -> Quantity:
    """A number the replay-job scenario measured on ``db``."""

    def read(results: Results) -> Shown | None:
        figures = (results.replay_jobs or {}).get(db)
        if not isinstance(figures, ReplayJobFigures):
            return None
        value = get(figures)
        return Shown(value, text(value))

    return read


def whole_run(get: Callable[[Results], float], text: Text) -> Quantity:
    """A number about the whole run (every figure, the total time)."""

    def read(results: Results) -> Shown | None:
        value = get(results)
        return Shown(value, text(value))

    return read


def constant(number: float, text: Text = rate) -> Quantity:
    return lambda _results: Shown(number, text(number))


def lowest(*candidates: tuple[str, Quantity]) -> Quantity:
    """The smallest of the candidates that were measured, labelled with its name (the first
    one wins a tie)."""

    def read(results: Results) -> Shown | None:
        best: Shown | None = None
        for label, quantity in candidates:
            shown = quantity(results)
            if shown is not None and (best is None or shown.number < best.number):
                best = Shown(shown.number, shown.text, label)
        return best

    return read


def first_of(*quantities: Quantity) -> Quantity:
    """The first of the quantities that was measured."""

    def read(results: Results) -> Shown | None:
        return next((s for q in quantities if (s := q(results)) is not None), None)

    return read
