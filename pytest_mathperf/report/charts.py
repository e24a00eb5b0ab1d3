"""Trend charts as SVG geometry: every coordinate is computed here; the template only draws.

A chart is built from one sample per run (already read from the history by the view model), so
this module knows nothing about histories or records: values, intervals, bounds and labels in;
points, lines, ticks and markers out.

The y-axis rule, the same on every chart: shares run from 0 to 100 %; any other metric whose
values are all non-negative starts at zero and ends just above the highest value or interval,
so a 3 % wiggle looks like one. A budget within BUDGET_REACH times that top is drawn to scale
(and the axis grows to hold it); one further off would squash the data to the floor, so it is
written at the edge of the plot with an arrow instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
#: A budget more than this many times above the data's top is an edge label, not a line: drawn
#: to scale, it would leave the data less than a third of the plot's height.
BUDGET_REACH = 3.0
#: Up to this many points, every run gets its name under the x-axis; above, the first and last.
MAX_NAMED_TICKS = 6
MAX_TICK_CHARS = 10

CHART_WIDTH = 330
CHART_HEIGHT = 176
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 46.0, 322.0, 16.0, 146.0


@dataclass(frozen=True)
class ChartSample:
    """One run's value on one chart, before placing."""

    short: str  # the run's name under the x-axis
    full: str  # the run's name in the hover
    when: str
    value: float | None
    low: float | None  # the point's interval (the noise), when the samples give one
    high: float | None
    interval: str  # what the interval is, for the hover ("" when none)
    minimum: float | None  # the budget's bounds in this run
    maximum: float | None
    failed: bool
    blessed: bool


@dataclass(frozen=True)
class Marker:
    """A change between a run and the one before it, at the later run's position."""

    position: int
    kind: str  # content (breaks the line) | environment
    text: str


@dataclass(frozen=True)
class ChartPoint:
    """One run, or one group of consecutive runs when there are more than MAX_POINTS."""

    x: float
    y: float
    low_y: float | None  # the interval (one run) or the group's min–max
    high_y: float | None
    failed: bool  # this chart's budget failed in (one of) the run(s)
    blessed: bool
    label: str  # the tooltip: run(s), date, value, interval, budget


@dataclass(frozen=True)
class BudgetLine:
    """A horizontal budget segment over the runs where the budget held this value."""

    x1: float
    x2: float
    y: float
    label: str


@dataclass(frozen=True)
class EdgeLabel:
    """A budget too far from the data to draw to scale: written at the plot's top or bottom."""

    y: float
    text: str


@dataclass(frozen=True)
class Baseline:
    """The blessed run's value across the whole chart."""

    y: float
    label: str


@dataclass(frozen=True)
class ChangeMarker:
    """A vertical marker where the suite, the weights or the environment changed."""

    x: float
    kind: str  # content | environment
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
    lines: tuple[str, ...]  # SVG polyline point lists; a missing run or a content change breaks the line
    budget_lines: tuple[BudgetLine, ...]
    edge_labels: tuple[EdgeLabel, ...]
    baseline: Baseline | None
    changes: tuple[ChangeMarker, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    runs: int  # runs with a value
    failed_runs: int
    latest: str  # the latest value, formatted
    budget: str  # the latest budget, formatted ("" when none)
    summarised: bool  # points are groups of runs
    higher_is_better: bool


@dataclass(frozen=True)
class Domain:
    low: float
    high: float
    data_top: float  # the top of the values and intervals, before budgets widened it


def domain_of(metric: str, sample_lists: Iterable[Sequence[ChartSample]]) -> Domain:
    """The y-axis of one metric's charts (one list of samples per chart that shares the axis)."""
    samples = [sample for found in sample_lists for sample in found]
    if is_share(metric):
        return Domain(0.0, 100.0, 100.0)
    data = [v for s in samples for v in (s.value, s.low, s.high) if v is not None and math.isfinite(v)]
    if not data:
        return Domain(0.0, 1.0, 1.0)
    low, top = min(data), max(data)
    bounds = [b for s in samples for b in (s.minimum, s.maximum) if b is not None]
    reachable = [b for b in bounds if _on_scale(b, low, top)]
    high = max([top, *reachable])
    if low >= 0:
        return Domain(0.0, high * 1.08 if high > 0 else 1.0, top)
    lowest = min([low, *reachable])
    pad = (high - lowest) * 0.08 or abs(high) * 0.1 or 1.0
    return Domain(lowest - pad, high + pad, top)


def _on_scale(bound: float, low: float, top: float) -> bool:
    if low >= 0:
        return bound <= top * BUDGET_REACH if top > 0 else bound == 0
    span = top - low
    return low - span * (BUDGET_REACH - 1) <= bound <= top + span * (BUDGET_REACH - 1)


def build_chart(
    name: str,
    title: str,
    metric: str,
    samples: Sequence[ChartSample],
    markers: Sequence[Marker],
    domain: Domain | None = None,
) -> Chart:
    """A chart of one metric over runs; ``markers`` are the changes by run position."""
    unit = chart_unit(metric)
    groups = _groups(len(samples))
    summarised = any(len(group) > 1 for group in groups)
    domain = domain or domain_of(metric, [samples])
    low, high = domain.low, domain.high

    def x_of(index: int) -> float:
        if len(groups) == 1:
            return (PLOT_LEFT + PLOT_RIGHT) / 2
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * index / (len(groups) - 1)

    def y_of(value: float) -> float:
        clamped = min(max(value, low), high)
        return _round(PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (clamped - low) / (high - low))

    group_of = {position: index for index, group in enumerate(groups) for position in group}
    breaks = {group_of[m.position] for m in markers if m.kind == "content" and m.position in group_of}
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
        if (not measured or index in breaks) and line:
            lines.append(" ".join(line))
            line = []
        if not measured:
            continue
        value = statistic(measured, "p50")
        failed = sum(1 for s in members if s.failed)
        y = y_of(value)
        line.append(f"{x},{y}")
        if len(members) == 1:
            label = f"{last.full} · {last.when} · {number(value)} {unit}".rstrip()
            if last.interval:
                label += f" ({last.interval})"
            low_y = y_of(last.low) if last.low is not None else None
            high_y = y_of(last.high) if last.high is not None else None
        else:
            first = members[0]
            label = (
                f"{first.full} – {last.full} ({len(members)} runs, {first.when} – {last.when}) · "
                f"median {number(value)}, min {number(min(measured))}, max {number(max(measured))} {unit}"
            ).rstrip()
            low_y, high_y = y_of(min(measured)), y_of(max(measured))
        bound = bound_text(last.minimum, last.maximum, metric)
        if bound:
            label += f" · budget {bound}"
        if failed:
            label += " · budget FAILED" if len(members) == 1 else f" · budget failed in {failed} runs"
        blessed = any(s.blessed for s in members)
        if blessed:
            label += " · blessed baseline"
        points.append(ChartPoint(x=x, y=y, low_y=low_y, high_y=high_y, failed=failed > 0, blessed=blessed, label=label))
    if line:
        lines.append(" ".join(line))

    on_scale = [(x, *(b if b is None or _on_scale(b, domain.low, domain.data_top) else None for b in bounds))
                for x, *bounds in group_budgets]
    budget_lines = _budget_lines(on_scale, y_of, unit, len(groups))
    edge_labels = _edge_labels(samples, domain, unit)
    measured_samples = [s for s in samples if s.value is not None]
    latest = measured_samples[-1] if measured_samples else None
    return Chart(
        key=name,
        title=title,
        points=tuple(points),
        lines=tuple(lines),
        budget_lines=budget_lines,
        edge_labels=edge_labels,
        baseline=_baseline(samples, y_of, unit),
        changes=_change_markers(markers, group_of, x_of),
        y_ticks=tuple(Tick(y_of(tick), _tick_label(tick)) for tick in _ticks(low, high)),
        x_ticks=_x_ticks(samples, groups, x_of),
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


def _edge_labels(samples: Sequence[ChartSample], domain: Domain, unit: str) -> tuple[EdgeLabel, ...]:
    """The budgets too far from the data to draw, each once, at the edge they lie beyond."""
    labels: dict[str, EdgeLabel] = {}
    for sample in samples:
        for sign, bound in (("≥", sample.minimum), ("≤", sample.maximum)):
            if bound is None or _on_scale(bound, domain.low, domain.data_top):
                continue
            above = bound > domain.data_top
            text = f"{'↑' if above else '↓'} budget {sign} {number(bound)} {unit} (off scale)".replace("  ", " ")
            labels.setdefault(text, EdgeLabel(PLOT_TOP - 5 if above else PLOT_BOTTOM - 4, text))
    return tuple(labels.values())


def _baseline(samples: Sequence[ChartSample], y_of: Callable[[float], float], unit: str) -> Baseline | None:
    """The latest blessed run's value, for the eye to compare every later run with."""
    blessed = [s for s in samples if s.blessed and s.value is not None]
    if not blessed:
        return None
    chosen = blessed[-1]
    assert chosen.value is not None
    return Baseline(y_of(chosen.value), f"blessed baseline: {chosen.full}, {number(chosen.value)} {unit}".rstrip())


def _change_markers(
    markers: Sequence[Marker], group_of: Mapping[int, int], x_of: Callable[[int], float]
) -> tuple[ChangeMarker, ...]:
    """One marker per group and kind; its hover lists what changed (at most 8 items, then a count)."""
    texts: dict[tuple[int, str], list[str]] = {}
    for marker in markers:
        if marker.position in group_of:
            texts.setdefault((group_of[marker.position], marker.kind), []).append(marker.text)
    found = []
    for (index, kind), items in sorted(texts.items()):
        shown = items[:8] + ([f"… and {len(items) - 8} more"] if len(items) > 8 else [])
        prefix = "environment changed: " if kind == "environment" else "not comparable, line broken: "
        found.append(ChangeMarker(x=_round(x_of(index)), kind=kind, label=prefix + "; ".join(shown)))
    return tuple(found)


def _x_ticks(samples: Sequence[ChartSample], groups: Sequence[Sequence[int]], x_of: Callable[[int], float]) -> tuple[Tick, ...]:
    if not groups:
        return ()
    if len(groups) <= MAX_NAMED_TICKS:
        indexes = list(range(len(groups)))
    else:
        indexes = sorted({0, len(groups) - 1})
    ticks = []
    for index in indexes:
        sample = samples[groups[index][-1 if index else 0]]
        label = sample.short if len(sample.short) <= MAX_TICK_CHARS else sample.short[: MAX_TICK_CHARS - 1] + "…"
        ticks.append(Tick(_round(x_of(index)), label))
    return tuple(ticks)


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
