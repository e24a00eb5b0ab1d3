"""The trends of one model on one card: which charts, each run's value and interval, the changes.

Runs are read as summaries (a few grouped queries for any number of runs); the full records
that give each point its interval and the last two runs their case-by-case comparison are
read only where a chart shows single runs (at most MAX_POINTS of them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_mathperf.history import ALL_SUITES, ModelSummary, RunSummary
from pytest_mathperf.metrics import ACCURACY, MODEL_METRICS
from pytest_mathperf.outputs.view import shown_statistic
from pytest_mathperf.report import noise
from pytest_mathperf.report.charts import MAX_POINTS, Chart, ChartSample, Domain, Marker, build_chart
from pytest_mathperf.report.formatting import chart_scale, chart_unit, title_of, when
from pytest_mathperf.report.runs import Change, RunName, busy_note, changes_between, is_blessed, run_name
from pytest_mathperf.results import BudgetRecord, RunRecord

#: Changes listed per model × card under the charts (all are marked on the charts).
MAX_CHANGE_ROWS = 30


@dataclass(frozen=True)
class SeriesKey:
    """What one chart plots: a metric, its statistic (None for one value per run) and its suite."""

    metric: str
    statistic: str | None
    suite: str | None  # None: over all of the model's suites

    @property
    def name(self) -> str:
        name = f"{self.metric}.{self.statistic}" if self.statistic else self.metric
        return f"{name}@{self.suite}" if self.suite is not None else name

    @property
    def title(self) -> str:
        title = title_of(self.metric)
        if self.statistic:
            title += f" {self.statistic}"
        if self.suite is not None:
            title += f" · {self.suite}"
        unit = chart_unit(self.metric)
        return f"{title} ({unit})" if unit else title


class RunDetails:
    """Full records of the runs the page needs beyond their summaries, each read once."""

    def __init__(self, load_run: Callable[[int], RunRecord] | None, current: RunRecord | None) -> None:
        self._load_run = load_run
        self._current = current
        self._records: dict[int | None, RunRecord | None] = {}
        self._samples: dict[tuple[int | None, str], dict[tuple[str, str], list[float]]] = {}

    def record(self, summary: RunSummary) -> RunRecord | None:
        """The run in full; None when it cannot be read (a run summarised from elsewhere)."""
        if summary.run_id not in self._records:
            if self._current is not None and self._current.started_at == summary.started_at:
                record: RunRecord | None = self._current
            elif summary.run_id is not None and self._load_run is not None:
                record = self._load_run(summary.run_id)
            else:
                record = None
            self._records[summary.run_id] = record
        return self._records[summary.run_id]

    def samples(self, summary: RunSummary, model: str) -> Mapping[tuple[str, str], list[float]]:
        """Every per-generation value of the model in the run, by (metric, suite); ALL_SUITES for all."""
        key = (summary.run_id, model)
        if key not in self._samples:
            found: dict[tuple[str, str], list[float]] = {}
            record = self.record(summary)
            for case in record.cases_of(model) if record is not None else ():
                for generation in case.generations:
                    for metric, value in generation.comparable_metrics().items():
                        if isinstance(value, (int, float)) and not math.isnan(value):
                            found.setdefault((metric, ALL_SUITES), []).append(float(value))
                            found.setdefault((metric, case.suite), []).append(float(value))
            self._samples[key] = found
        return self._samples[key]


@dataclass(frozen=True)
class ChangeRow:
    run: str
    when: str
    kind: str  # content | environment
    what: str
    before: str
    after: str


@dataclass(frozen=True)
class Panel:
    """Trends of one model on one card."""

    anchor: str
    model: str
    card: str
    runs: int
    charts: tuple[Chart, ...]
    changes: tuple[ChangeRow, ...]  # newest first, at most MAX_CHANGE_ROWS
    changes_total: int
    content_changes: int


@dataclass
class Trend:
    """One model × card's runs, oldest first, with what is known about them before charting."""

    anchor: str
    model: str
    card: str
    runs: list[tuple[RunSummary, ModelSummary]] = field(default_factory=list)
    names: list[RunName] = field(default_factory=list)
    changes: list[tuple[int, Change]] = field(default_factory=list)  # by position of the later run
    budgets: list[dict[SeriesKey, list[BudgetRecord]]] = field(default_factory=list)
    samples: dict[SeriesKey, list[ChartSample]] = field(default_factory=dict)  # computed once per chart

    @property
    def summarised(self) -> bool:
        return len(self.runs) > MAX_POINTS


def trends(summaries: Sequence[RunSummary]) -> list[Trend]:
    """One trend per model × card, in the order they first appear."""
    found: dict[tuple[str, str], Trend] = {}
    for summary in summaries:
        name = run_name(summary)
        for model in summary.models:
            key = (model.model.model, model.model.card)
            trend = found.setdefault(key, Trend(f"panel-{len(found)}", *key))
            if trend.runs:
                trend.changes += [(len(trend.runs), change) for change in changes_between(trend.runs[-1], (summary, model))]
            trend.runs.append((summary, model))
            trend.names.append(name)
            trend.budgets.append(_budgets_by_key(model))
    return list(found.values())


def series_keys(trend: Trend) -> list[SeriesKey]:
    """The charts of one model × card: the key metrics first, then whatever a budget judged."""
    keys = key_series(trend)
    suites = sorted({suite for _, model in trend.runs for suite in model.accuracy if suite != ALL_SUITES})
    keys.extend(SeriesKey(ACCURACY, None, suite) for suite in suites)
    for found in trend.budgets:
        keys.extend(key for key in found if key not in keys)
    return keys


def key_series(trend: Trend) -> list[SeriesKey]:
    """The metrics every panel shows, and the fleet view compares across cards."""
    has_vram = any("vram_peak_gb" in model.model.metrics for _, model in trend.runs)
    return [
        SeriesKey("ttft_ms", "p50", None), SeriesKey("ttft_ms", "p95", None), SeriesKey("tokens_per_s", shown_statistic("tokens_per_s"), None),
        SeriesKey("vram_peak_gb" if has_vram else "rss_peak_gb", None, None), SeriesKey(ACCURACY, None, None),
    ]


def chart_samples(trend: Trend, key: SeriesKey, details: RunDetails) -> list[ChartSample]:
    if key not in trend.samples:
        trend.samples[key] = [_sample(trend, position, key, details) for position in range(len(trend.runs))]
    return trend.samples[key]


def markers(trend: Trend, key: SeriesKey) -> list[Marker]:
    """The changes that concern a chart: a suite's change leaves other suites' charts joined."""
    return [
        Marker(position, change.kind, change.text)
        for position, change in trend.changes
        if change.kind == "environment" or change.suite is None or key.suite is None or change.suite == key.suite
    ]


def panel(trend: Trend, details: RunDetails) -> Panel:
    charts = []
    for key in series_keys(trend):
        chart = build_chart(key.name, key.title, key.metric, chart_samples(trend, key, details), markers(trend, key))
        if chart.runs:
            charts.append(chart)
    rows = [
        ChangeRow(trend.names[position].full, when(trend.runs[position][0].started_at), change.kind, change.key,
                  change.before, change.after)
        for position, change in trend.changes
    ]
    return Panel(
        anchor=trend.anchor,
        model=trend.model,
        card=trend.card,
        runs=len(trend.runs),
        charts=tuple(charts),
        changes=tuple(reversed(rows[-MAX_CHANGE_ROWS:])),
        changes_total=len(rows),
        content_changes=sum(1 for _, change in trend.changes if change.kind == "content"),
    )


def shared_chart(key: SeriesKey, samples: Sequence[ChartSample], trend: Trend, domain: Domain) -> Chart:
    """A chart on an axis shared with other charts (the same metric on other cards)."""
    return build_chart(key.name, key.title, key.metric, samples, markers(trend, key), domain)


def _budget_key(budget: BudgetRecord) -> SeriesKey:
    suite = budget.suite if budget.scope in ("suite", "load") else None
    return SeriesKey(budget.metric, None if budget.metric == ACCURACY else budget.statistic, suite)


def _budgets_by_key(model: ModelSummary) -> dict[SeriesKey, list[BudgetRecord]]:
    found: dict[SeriesKey, list[BudgetRecord]] = {}
    for budget in model.budgets:
        found.setdefault(_budget_key(budget), []).append(budget)
    return found


def _sample(trend: Trend, position: int, key: SeriesKey, details: RunDetails) -> ChartSample:
    summary, model = trend.runs[position]
    budgets = trend.budgets[position].get(key, [])
    suite = key.suite if key.suite is not None else ALL_SUITES
    scale = chart_scale(key.metric)
    value: float | None = next((b.measured for b in budgets if b.measured is not None), None)
    interval = noise.NONE
    if key.metric == ACCURACY:
        passed, total = model.accuracy.get(suite, (0, 0))
        if value is None:
            value = passed / total if total else None
        interval = noise.share_interval(passed, total, scale)
    elif key.metric in MODEL_METRICS and key.suite is None:
        if value is None:
            value = model.model.metrics.get(key.metric)
    else:
        if value is None:
            stats = model.stats.get((key.metric, suite))
            value = stats.values.get(key.statistic or "p50") if stats else None
        if not trend.summarised and value is not None:
            samples = details.samples(summary, model.model.model).get((key.metric, suite), [])
            interval = noise.quantile_interval(samples, key.statistic or "p50", scale)
    minimum = next((b.minimum for b in budgets if b.minimum is not None), None)
    maximum = next((b.maximum for b in budgets if b.maximum is not None), None)
    name = trend.names[position]
    return ChartSample(
        short=name.short,
        full=name.full + busy_note(summary),
        when=when(summary.started_at),
        value=None if value is None or math.isnan(value) else value * scale,
        low=interval.low,
        high=interval.high,
        interval=interval.text,
        minimum=None if minimum is None else minimum * scale,
        maximum=None if maximum is None else maximum * scale,
        failed=any(budget.verdict == "failed" for budget in budgets),  # inconclusive is not failed
        blessed=is_blessed(summary),
    )
