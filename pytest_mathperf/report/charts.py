"""Trend charts as SVG geometry: every coordinate is computed here; the template only draws.

A chart is built from one sample per run (already read from the history by the view model), so
this module knows nothing about histories or records: values, bounds and labels in, points,
lines, ticks and markers out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pytest_mathperf.metrics import statistic
from pytest_mathperf.report.formatting import (
    bound_text,
    chart_unit,
    higher_is_better,
    is_share,
    number,
    with_bound_unit,
)

#: Above this many runs a chart shows each point as a group of consecutive runs (median, with
#: the group's min–max as a whisker), so the page stays small without leaving any run out.
MAX_POINTS = 100

CHART_WIDTH = 330
CHART_HEIGHT = 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 46.0, 322.0, 12.0, 146.0


@dataclass(frozen=True)
class ChartSample:
    """One run's value on one chart, before placing."""

    label: str
    when: str
    value: float | None
    minimum: float | None  # the budget's bounds in this run
    maximum: float | None
    failed: bool


@dataclass(frozen=True)
class ChartPoint:
    """One run, or one group of consecutive runs when there are more than MAX_POINTS."""

    x: float
    y: float
    low_y: float | None  # the group's min–max whisker (None for a single run)
    high_y: float | None
    failed: bool  # this chart's budget failed in (one of) the run(s)
    label: str  # the tooltip: run(s), date, value, budget


@dataclass(frozen=True)
class BudgetLine:
    """A horizontal budget segment over the runs where the budget held this value."""

    x1: float
    x2: float
    y: float
    label: str


@dataclass(frozen=True)
class ChangeMarker:
    """A vertical marker where the environment of this model × card changed."""

    x: float
    label: str


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    """One metric over runs, with every coordinate already computed."""

    key: str
    title: str
    points: tuple[ChartPoint, ...]
    lines: tuple[str, ...]  # SVG polyline point lists; a run without the metric breaks the line
    budget_lines: tuple[BudgetLine, ...]
    changes: tuple[ChangeMarker, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    runs: int  # runs with a value
    failed_runs: int
    latest: str  # the latest value, formatted
    budget: str  # the latest budget, formatted ("" when none)
    summarised: bool  # points are groups of runs
    higher_is_better: bool



def build_chart(
    name: str, title: str, metric: str, samples: Sequence[ChartSample], change_points: Mapping[int, list[str]]
) -> Chart:
    """A chart of one metric over runs; ``change_points`` are the environment changes by run position."""
    unit = chart_unit(metric)
    groups = _groups(len(samples))
    summarised = any(len(group) > 1 for group in groups)

    def x_of(index: int) -> float:
        if len(groups) == 1:
            return (PLOT_LEFT + PLOT_RIGHT) / 2
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * index / (len(groups) - 1)

    values = [s.value for s in samples if s.value is not None]
    bounds = [b for s in samples for b in (s.minimum, s.maximum) if b is not None]
    low, high = _y_domain(values + bounds, is_share(metric))

    def y_of(value: float) -> float:
        return _round(PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (value - low) / (high - low))

    points: list[ChartPoint] = []
    lines: list[str] = []
    line: list[str] = []
    group_budgets: list[tuple[float, float | None, float | None]] = []
    for index, group in enumerate(groups):
        members = [samples[position] for position in group]
        measured = [s.value for s in members if s.value is not None]
        x = _round(x_of(index))
        last = members[-1]
        group_budgets.append((x, last.minimum, last.maximum))
        if not measured:
            if line:
                lines.append(" ".join(line))
                line = []
            continue
        value = statistic(measured, "p50")
        failed = sum(1 for s in members if s.failed)
        y = y_of(value)
        line.append(f"{x},{y}")
        bound = bound_text(last.minimum, last.maximum, metric)
        if len(members) == 1:
            label = f"{last.label} · {last.when} · {number(value)} {unit}".rstrip()
            low_y = high_y = None
        else:
            first = members[0]
            label = (
                f"{first.label}–{last.label} ({len(members)} runs, {first.when} – {last.when}) · "
                f"median {number(value)}, min {number(min(measured))}, "
                f"max {number(max(measured))} {unit}"
            ).rstrip()
            low_y, high_y = y_of(min(measured)), y_of(max(measured))
        if bound:
            label += f" · budget {bound}"
        if failed:
            label += " · budget FAILED" if len(members) == 1 else f" · budget failed in {failed} runs"
        points.append(ChartPoint(x=x, y=y, low_y=low_y, high_y=high_y, failed=failed > 0, label=label))
    if line:
        lines.append(" ".join(line))

    budget_lines = _budget_lines(group_budgets, y_of, metric, unit, len(groups))
    changes = []
    for index, group in enumerate(groups):
        found = [text for position in group for text in change_points.get(position, [])]
        if found:
            shown = found[:8] + ([f"… and {len(found) - 8} more"] if len(found) > 8 else [])
            changes.append(ChangeMarker(x=_round(x_of(index)), label="environment changed: " + "; ".join(shown)))

    measured_samples = [s for s in samples if s.value is not None]
    latest = measured_samples[-1] if measured_samples else None
    x_ticks = []
    if groups:
        for index in sorted({0, len(groups) - 1}):
            x_ticks.append(Tick(_round(x_of(index)), samples[groups[index][-1 if index else 0]].label))
    return Chart(
        key=name,
        title=title,
        points=tuple(points),
        lines=tuple(lines),
        budget_lines=budget_lines,
        changes=tuple(changes),
        y_ticks=tuple(Tick(y_of(tick), _tick_label(tick)) for tick in _ticks(low, high)),
        x_ticks=tuple(x_ticks),
        runs=len(measured_samples),
        failed_runs=sum(1 for s in samples if s.failed),
        latest=f"{number(latest.value)} {unit}".rstrip() if latest and latest.value is not None else "",
        budget=with_bound_unit(bound_text(samples[-1].minimum, samples[-1].maximum, metric), unit) if samples else "",
        summarised=summarised,
        higher_is_better=higher_is_better(metric),
    )


def _groups(count: int) -> list[list[int]]:
    """Positions 0..count-1 in at most MAX_POINTS groups of consecutive runs, as equal as can be."""
    if count <= MAX_POINTS:
        return [[position] for position in range(count)]
    return [
        list(range(index * count // MAX_POINTS, (index + 1) * count // MAX_POINTS)) for index in range(MAX_POINTS)
    ]


def _budget_lines(
    group_budgets: Sequence[tuple[float, float | None, float | None]],
    y_of: Callable[[float], float],
    metric: str,
    unit: str,
    count: int,
) -> tuple[BudgetLine, ...]:
    """Horizontal segments, one per stretch of runs where a bound kept its value."""
    half = (PLOT_RIGHT - PLOT_LEFT) / (2 * (count - 1)) if count > 1 else (PLOT_RIGHT - PLOT_LEFT) / 2
    segments: list[BudgetLine] = []
    for slot, word in ((1, "min"), (2, "max")):
        start: tuple[float, float] | None = None  # (x, bound)
        previous_x = 0.0
        for entry in list(group_budgets) + [(math.inf, None, None)]:
            x, bound = entry[0], entry[slot]
            if start is not None and bound != start[1]:
                segments.append(
                    BudgetLine(
                        x1=_round(max(PLOT_LEFT, start[0] - half)),
                        x2=_round(min(PLOT_RIGHT, previous_x + half)),
                        y=y_of(start[1]),
                        label=f"budget {word} {number(start[1])} {unit}".rstrip(),
                    )
                )
                start = None
            if start is None and bound is not None:
                start = (x, bound)
            previous_x = x
    return tuple(segments)


def _y_domain(values: Sequence[float], percent: bool) -> tuple[float, float]:
    if percent:
        return 0.0, 100.0
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
    else:
        pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    if min(values) >= 0 and low < 0:
        low = 0.0
    return low, high


def _ticks(low: float, high: float) -> list[float]:
    """About four round numbers between low and high."""
    raw = (high - low) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _tick_label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{round(value, 6):g}"


def _round(value: float) -> float:
    return round(value, 1)
