"""The HTML trend report: one self-contained page from the run history (SPEC 2.5).

The report's data model (charts with their points already placed, budget lines, change markers,
the latest run's tables) is built here in plain Python and handed to jinja2, which only draws
it. Autoescaping is on for every template, so suite text and model output containing
``<script>`` show as text. The page loads nothing: no scripts, fonts or styles from anywhere,
and a Content-Security-Policy that allows only its own inline script says so to the browser.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pytest_mathperf.history import ALL_SUITES, History, HistoryError, ModelSummary, RunSummary, summarise
from pytest_mathperf.metrics import (
    ACCURACY,
    GENERATION_METRICS,
    HIGHER_IS_BETTER,
    MODEL_METRICS,
    SHARE_METRICS,
    format_number,
    statistic,
    unit_of,
    wilson_interval,
)
from pytest_mathperf.results import BudgetRecord, CaseRecord, ModelRecord, RunRecord, summary_statistic

#: Above this many runs a chart shows each point as a group of consecutive runs (median, with
#: the group's min–max as a whisker), so the page stays small without leaving any run out.
MAX_POINTS = 100
#: Raw outputs longer than this show their end (where the answer is); the history keeps all.
MAX_OUTPUT_CHARS = 20_000
#: Environment changes listed per model × card under the charts (all are marked on the charts).
MAX_CHANGE_ROWS = 30

CHART_WIDTH = 330
CHART_HEIGHT = 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 46.0, 322.0, 12.0, 146.0

METRIC_TITLES: dict[str, str] = {
    "ttft_ms": "TTFT",
    "tpot_ms": "TPOT",
    "e2e_ms": "end-to-end",
    "tokens_per_s": "tokens/s",
    "decode_tokens_per_s": "decode tokens/s",
    "output_tokens": "output tokens",
    "prompt_tokens": "prompt tokens",
    "reasoning_tokens": "reasoning tokens",
    "load_s": "load time",
    "vram_load_gb": "VRAM after load",
    "vram_peak_gb": "VRAM peak",
    "rss_load_gb": "RSS after load",
    "rss_peak_gb": "RSS peak",
    ACCURACY: "accuracy",
}
#: Environment keys shown first, in this order, when listing a run's environment or its changes.
ENVIRONMENT_ORDER: tuple[str, ...] = (
    "card", "driver", "cuda", "torch", "transformers", "backend", "device", "dtype", "revision",
    "source", "memory_source", "suites_commit", "pytest-mathperf", "math-verify", "python", "host",
    "platform", "cpu",
)

_SCRIPT = """document.documentElement.dataset.script = "ran";
const only = document.getElementById("only-failing");
if (only) {
  only.hidden = false;
  only.querySelector("input").addEventListener("change", (event) => {
    document.body.classList.toggle("only-failing", event.target.checked);
  });
}"""


# -- the data model ---------------------------------------------------------------------------------


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
        title = METRIC_TITLES.get(self.metric, self.metric)
        if self.statistic:
            title += f" {self.statistic}"
        if self.suite is not None:
            title += f" · {self.suite}"
        unit = "%" if self.metric == ACCURACY else unit_of(self.metric)
        return f"{title} ({unit})" if unit else title


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


@dataclass(frozen=True)
class EnvironmentChange:
    run: str
    when: str
    key: str
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
    changes: tuple[EnvironmentChange, ...]  # newest first, at most MAX_CHANGE_ROWS
    changes_total: int


@dataclass(frozen=True)
class TableRow:
    label: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class BudgetView:
    passed: bool
    model: str
    name: str
    where: str
    measured: str
    bound: str
    samples: int
    card: str


@dataclass(frozen=True)
class GenerationView:
    repeat: int
    status: str
    extracted: str
    reason: str
    metrics: str
    output: str
    output_note: str


@dataclass(frozen=True)
class CaseView:
    passed: bool
    verdict: str
    model: str
    suite: str
    case: str
    nodeid: str
    prompt: str
    expected: str
    extracted: str
    correct: str  # "2/3"
    ttft: str
    tokens_per_s: str
    generations: tuple[GenerationView, ...]


@dataclass(frozen=True)
class LatestRun:
    """The latest run in full: its budgets, the models side by side and every case."""

    label: str
    when: str
    duration: str
    environment: tuple[tuple[str, str], ...]
    models: tuple[str, ...]
    table: tuple[TableRow, ...]
    budgets: tuple[BudgetView, ...]
    budgets_failed: int
    cases: tuple[CaseView, ...]
    cases_failed: int


@dataclass(frozen=True)
class Report:
    """Everything the template shows."""

    generated: str
    source: str
    notice: str  # a problem the reader must know about ("" when none)
    run_count: int
    model_count: int
    cards: tuple[str, ...]
    panels: tuple[Panel, ...]
    latest: LatestRun | None
    script: str
    script_hash: str


# -- building the data model ------------------------------------------------------------------------


def build_report(
    summaries: Sequence[RunSummary], latest: RunRecord | None, *, source: str, notice: str = ""
) -> Report:
    """The report's data model from run summaries (oldest first) and the latest run in full."""
    panels = _panels(summaries)
    models = {model.model.model for summary in summaries for model in summary.models}
    cards = sorted({model.model.card for summary in summaries for model in summary.models})
    latest_summary = summaries[-1] if summaries else None
    return Report(
        generated=_when(time.time()),
        source=source,
        notice=notice,
        run_count=len(summaries),
        model_count=len(models),
        cards=tuple(cards),
        panels=panels,
        latest=_latest_run(latest, latest_summary) if latest is not None else None,
        script=_SCRIPT,
        script_hash="sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode(),
    )


def _panels(summaries: Sequence[RunSummary]) -> tuple[Panel, ...]:
    entries: dict[tuple[str, str], list[tuple[RunSummary, ModelSummary]]] = {}
    for summary in summaries:
        for model in summary.models:
            entries.setdefault((model.model.model, model.model.card), []).append((summary, model))
    panels = []
    for index, ((model, card), runs) in enumerate(entries.items()):
        changes = _changes(runs)
        change_points = {position: [f"{c.key}: {c.before} → {c.after}" for c in found] for position, found in changes}
        budgets_by_key = [_budgets_by_key(model) for _, model in runs]
        charts = tuple(_chart(key, runs, change_points, budgets_by_key) for key in _series_keys(runs, budgets_by_key))
        flat = [change for _, found in changes for change in found]
        panels.append(
            Panel(
                anchor=f"panel-{index}",
                model=model,
                card=card,
                runs=len(runs),
                charts=tuple(chart for chart in charts if chart.runs),
                changes=tuple(reversed(flat[-MAX_CHANGE_ROWS:])),
                changes_total=len(flat),
            )
        )
    return tuple(panels)


def _series_keys(
    runs: Sequence[tuple[RunSummary, ModelSummary]], budgets_by_key: Sequence[Mapping[SeriesKey, list[BudgetRecord]]]
) -> list[SeriesKey]:
    """The charts of one model × card: the seed's metrics first, then whatever a budget judged."""
    keys = [SeriesKey("ttft_ms", "p50", None), SeriesKey("ttft_ms", "p95", None), SeriesKey("tokens_per_s", "p50", None)]
    has_vram = any("vram_peak_gb" in model.model.metrics for _, model in runs)
    keys.append(SeriesKey("vram_peak_gb" if has_vram else "rss_peak_gb", None, None))
    keys.append(SeriesKey(ACCURACY, None, None))
    suites = sorted({suite for _, model in runs for suite in model.accuracy if suite != ALL_SUITES})
    keys.extend(SeriesKey(ACCURACY, None, suite) for suite in suites)
    for found in budgets_by_key:
        keys.extend(key for key in found if key not in keys)
    return keys


def _budget_key(budget: BudgetRecord) -> SeriesKey:
    suite = budget.suite if budget.scope in ("suite", "load") else None
    return SeriesKey(budget.metric, None if budget.metric == ACCURACY else budget.statistic, suite)


@dataclass(frozen=True)
class _Sample:
    """One run's value on one chart, before placing."""

    position: int  # index among the panel's runs
    label: str
    when: str
    value: float | None
    minimum: float | None
    maximum: float | None
    failed: bool


def _budgets_by_key(model: ModelSummary) -> dict[SeriesKey, list[BudgetRecord]]:
    found: dict[SeriesKey, list[BudgetRecord]] = {}
    for budget in model.budgets:
        found.setdefault(_budget_key(budget), []).append(budget)
    return found


def _sample(
    position: int, summary: RunSummary, model: ModelSummary, budgets_by_key: Mapping[SeriesKey, list[BudgetRecord]], key: SeriesKey
) -> _Sample:
    budgets = budgets_by_key.get(key, [])
    value: float | None = next((b.measured for b in budgets if b.measured is not None), None)
    if value is None:
        if key.metric == ACCURACY:
            passed, total = model.accuracy.get(key.suite if key.suite is not None else ALL_SUITES, (0, 0))
            value = passed / total if total else None
        elif key.metric in MODEL_METRICS and key.suite is None:
            value = model.model.metrics.get(key.metric)
        else:
            stats = model.stats.get((key.metric, key.suite if key.suite is not None else ALL_SUITES))
            value = stats.values.get(key.statistic or "p50") if stats else None
    scale = 100.0 if key.metric == ACCURACY else 1.0
    minimum = next((b.minimum for b in budgets if b.minimum is not None), None)
    maximum = next((b.maximum for b in budgets if b.maximum is not None), None)
    return _Sample(
        position=position,
        label=_run_label(summary),
        when=_when(summary.started_at),
        value=None if value is None or math.isnan(value) else value * scale,
        minimum=None if minimum is None else minimum * scale,
        maximum=None if maximum is None else maximum * scale,
        failed=any(not budget.passed for budget in budgets),
    )


def _chart(
    key: SeriesKey,
    runs: Sequence[tuple[RunSummary, ModelSummary]],
    change_points: Mapping[int, list[str]],
    budgets_by_key: Sequence[Mapping[SeriesKey, list[BudgetRecord]]],
) -> Chart:
    samples = [
        _sample(position, summary, model, budgets_by_key[position], key)
        for position, (summary, model) in enumerate(runs)
    ]
    unit = "%" if key.metric == ACCURACY else unit_of(key.metric)
    groups = _groups(len(samples))
    summarised = any(len(group) > 1 for group in groups)

    def x_of(index: int) -> float:
        if len(groups) == 1:
            return (PLOT_LEFT + PLOT_RIGHT) / 2
        return PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * index / (len(groups) - 1)

    values = [s.value for s in samples if s.value is not None]
    bounds = [b for s in samples for b in (s.minimum, s.maximum) if b is not None]
    low, high = _y_domain(values + bounds, key.metric == ACCURACY)

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
        bound = _bound_text(last.minimum, last.maximum, key.metric)
        if len(members) == 1:
            label = f"{last.label} · {last.when} · {format_number(value)} {unit}".rstrip()
            low_y = high_y = None
        else:
            first = members[0]
            label = (
                f"{first.label}–{last.label} ({len(members)} runs, {first.when} – {last.when}) · "
                f"median {format_number(value)}, min {format_number(min(measured))}, "
                f"max {format_number(max(measured))} {unit}"
            ).rstrip()
            low_y, high_y = y_of(min(measured)), y_of(max(measured))
        if bound:
            label += f" · budget {bound}"
        if failed:
            label += " · budget FAILED" if len(members) == 1 else f" · budget failed in {failed} runs"
        points.append(ChartPoint(x=x, y=y, low_y=low_y, high_y=high_y, failed=failed > 0, label=label))
    if line:
        lines.append(" ".join(line))

    budget_lines = _budget_lines(group_budgets, y_of, key.metric, unit, len(groups))
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
        key=key.name,
        title=key.title,
        points=tuple(points),
        lines=tuple(lines),
        budget_lines=budget_lines,
        changes=tuple(changes),
        y_ticks=tuple(Tick(y_of(tick), _tick_label(tick)) for tick in _ticks(low, high)),
        x_ticks=tuple(x_ticks),
        runs=len(measured_samples),
        failed_runs=sum(1 for s in samples if s.failed),
        latest=f"{format_number(latest.value)} {unit}".rstrip() if latest and latest.value is not None else "",
        budget=_with_bound_unit(_bound_text(samples[-1].minimum, samples[-1].maximum, key.metric), unit) if samples else "",
        summarised=summarised,
        higher_is_better=key.metric in HIGHER_IS_BETTER,
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
                        label=f"budget {word} {format_number(start[1])} {unit}".rstrip(),
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


def _changes(runs: Sequence[tuple[RunSummary, ModelSummary]]) -> list[tuple[int, list[EnvironmentChange]]]:
    """What changed between consecutive runs of one model × card, by position of the later run."""
    found = []
    previous: dict[str, str] | None = None
    for position, (summary, model) in enumerate(runs):
        current = _fingerprint(summary, model.model)
        if previous is not None:
            changed = [
                EnvironmentChange(
                    run=_run_label(summary),
                    when=_when(summary.started_at),
                    key=key,
                    before=previous.get(key) or "—",
                    after=current.get(key) or "—",
                )
                for key in _ordered(set(previous) | set(current))
                if (previous.get(key) or "") != (current.get(key) or "")
            ]
            if changed:
                found.append((position, changed))
        previous = current
    return found


def _fingerprint(summary: RunSummary, model: ModelRecord) -> dict[str, str]:
    """The run's environment with the model's own fields over it; the card is the panel's, so left out."""
    fingerprint = {key: str(value) for key, value in summary.environment.items() if key != "card"}
    for key in ("backend", "device", "dtype", "revision", "source", "memory_source"):
        value = getattr(model, key)
        if value is not None:
            fingerprint[key] = str(value)
    return fingerprint


def _ordered(keys: set[str]) -> list[str]:
    known = [key for key in ENVIRONMENT_ORDER if key in keys]
    return known + sorted(keys - set(known))


def _latest_run(run: RunRecord, summary: RunSummary | None) -> LatestRun:
    label = _run_label(summary) if summary is not None and summary.started_at == run.started_at else "this run"
    models = [model.model for model in run.models]
    models += sorted({case.model for case in run.cases} - set(models))
    budgets = tuple(
        BudgetView(
            passed=b.passed,
            model=b.model,
            name=b.name,
            where=" · ".join(part for part in (b.scope, b.suite, b.case) if part),
            measured="nothing measured" if b.measured is None else _with_unit(b.measured, b.metric),
            bound=_bound_text(b.minimum, b.maximum, b.metric, scaled=False) + _unit_suffix(b.metric),
            samples=b.samples,
            card=b.card,
        )
        for b in sorted(run.budgets, key=lambda b: b.passed)
    )
    return LatestRun(
        label=label,
        when=_when(run.started_at),
        duration=_duration(run.finished_at - run.started_at),
        environment=tuple((key, str(run.environment[key])) for key in _ordered(set(run.environment))),
        models=tuple(models),
        table=_model_table(run, models),
        budgets=budgets,
        budgets_failed=sum(1 for b in run.budgets if not b.passed),
        cases=tuple(_case_view(case) for case in run.cases),
        cases_failed=sum(1 for case in run.cases if not case.passed),
    )


def _model_table(run: RunRecord, models: Sequence[str]) -> tuple[TableRow, ...]:
    """The seed's side-by-side table: one column per model."""
    records = {model.model: model for model in run.models}
    cases = {model: run.cases_of(model) for model in models}
    rows: list[TableRow] = []

    def add(label: str, value: Callable[[str], str]) -> None:
        values = tuple(value(model) for model in models)
        if any(values):
            rows.append(TableRow(label, values))

    def field(name: str) -> Callable[[str], str]:
        return lambda model: str(getattr(records[model], name) or "") if model in records else ""

    def model_metric(metric: str) -> Callable[[str], str]:
        def value(model: str) -> str:
            measured = records[model].metrics.get(metric) if model in records else None
            return "" if measured is None else _with_unit(measured, metric)

        return value

    def generation_metric(metric: str, name: str) -> Callable[[str], str]:
        def value(model: str) -> str:
            measured = summary_statistic(cases[model], metric, name)
            return "" if measured is None else _with_unit(measured, metric)

        return value

    def accuracy(suite: str | None) -> Callable[[str], str]:
        def value(model: str) -> str:
            chosen = [case for case in cases[model] if suite is None or case.suite == suite]
            return str(wilson_interval(sum(case.passed for case in chosen), len(chosen))) if chosen else ""

        return value

    for label, name in (("card", "card"), ("backend", "backend"), ("device", "device"), ("dtype", "dtype"),
                        ("revision", "revision"), ("memory source", "memory_source"), ("load error", "load_error")):
        add(label, field(name))
    for metric in ("load_s", "vram_load_gb", "vram_peak_gb", "rss_load_gb", "rss_peak_gb"):
        add(METRIC_TITLES[metric], model_metric(metric))
    for metric, name in (("ttft_ms", "p50"), ("ttft_ms", "p95"), ("tpot_ms", "p50"), ("tokens_per_s", "p50"),
                         ("decode_tokens_per_s", "p50"), ("output_tokens", "p50"), ("reasoning_tokens", "p50")):
        add(f"{METRIC_TITLES[metric]} {name}", generation_metric(metric, name))
    add("accuracy (all suites)", accuracy(None))
    for suite in sorted({case.suite for case in run.cases}):
        add(f"accuracy · {suite}", accuracy(suite))

    def budget_count(model: str) -> str:
        mine = [b for b in run.budgets if b.model == model]
        failed = sum(1 for b in mine if not b.passed)
        return f"{len(mine) - failed} passed, {failed} failed" if mine else ""

    add("budgets", budget_count)
    return tuple(rows)


def _case_view(case: CaseRecord) -> CaseView:
    shown = next((g for g in case.generations if g.status != "correct"), case.generations[0] if case.generations else None)

    def median(metric: str) -> str:
        measured = summary_statistic([case], metric, "p50")
        return "" if measured is None else _with_unit(measured, metric)

    generations = []
    for generation in case.generations:
        output, note = generation.output, ""
        if len(output) > MAX_OUTPUT_CHARS:
            note = f"the first {len(output) - MAX_OUTPUT_CHARS:,} characters are not shown; the history keeps them"
            output = output[-MAX_OUTPUT_CHARS:]
        metrics = " · ".join(
            f"{METRIC_TITLES.get(name, name)} {_with_unit(value, name)}"
            for name, value in generation.metrics.items()
            if name in GENERATION_METRICS and isinstance(value, (int, float)) and not math.isnan(value)
        )
        generations.append(
            GenerationView(
                repeat=generation.repeat,
                status=generation.status,
                extracted=generation.extracted or "",
                reason=generation.reason,
                metrics=metrics,
                output=output,
                output_note=note,
            )
        )
    return CaseView(
        passed=case.passed,
        verdict=case.verdict,
        model=case.model,
        suite=case.suite,
        case=case.case,
        nodeid=case.nodeid,
        prompt=case.prompt,
        expected=case.expected,
        extracted=(shown.extracted or "") if shown else "",
        correct=f"{case.correct_count}/{len(case.generations)}",
        ttft=median("ttft_ms"),
        tokens_per_s=median("tokens_per_s"),
        generations=tuple(generations),
    )


# -- formatting -------------------------------------------------------------------------------------


def _with_unit(value: float, metric: str) -> str:
    if metric in SHARE_METRICS:
        return f"{value:.1%}"
    return f"{format_number(value)}{_unit_suffix(metric)}"


def _unit_suffix(metric: str) -> str:
    unit = unit_of(metric)
    return f" {unit}" if unit and metric != ACCURACY else ""


def _bound_text(minimum: float | None, maximum: float | None, metric: str, *, scaled: bool = True) -> str:
    """``≥ 95`` / ``≤ 350`` / both; accuracy bounds as percentages."""
    def show(value: float) -> str:
        if metric in SHARE_METRICS and not scaled:
            return f"{value:.0%}"
        return format_number(value)

    parts = []
    if minimum is not None:
        parts.append(f"≥ {show(minimum)}")
    if maximum is not None:
        parts.append(f"≤ {show(maximum)}")
    return " and ".join(parts)


def _with_bound_unit(bound: str, unit: str) -> str:
    return f"{bound} {unit}" if bound and unit else bound


def _run_label(summary: RunSummary) -> str:
    return f"run {summary.run_id}" if summary.run_id is not None else "this run"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _round(value: float) -> float:
    return round(value, 1)


# -- rendering --------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    """Built once; autoescaping on for every template, whatever its name."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(report: Report) -> str:
    """The page for a report's data model."""
    plot = {
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": PLOT_LEFT, "right": PLOT_RIGHT,
        "top": PLOT_TOP, "bottom": PLOT_BOTTOM, "max_points": MAX_POINTS,
    }
    return _environment().get_template("report.html.j2").render(report=report, plot=plot)


def render_report(history: History, *, current: RunRecord | None = None) -> str:
    """The page for a history; ``current`` is this session's run (appended already, or not)."""
    summaries = history.summaries()
    latest = current if current is not None else history.latest_run()
    if current is not None and not _recorded(summaries, current):
        summaries.append(summarise(current))
    return render(build_report(summaries, latest, source=str(history.path)))


def write_report(history: History | None, output: Path, *, current: RunRecord | None = None) -> None:
    """Write the page; with no history (``--mathperf-no-history``), or one that cannot be read, the current run alone."""
    if history is not None:
        try:
            page = render_report(history, current=current)
        except HistoryError as error:
            if current is None:
                raise
            page = render(build_report([summarise(current)], current, source="this run", notice=f"history not shown: {error}"))
    elif current is not None:
        page = render(build_report([summarise(current)], current, source="this run (no history)"))
    else:
        raise ValueError("write_report needs a history or a current run")
    _write(output, page)


def write_report_from_history(history_path: Path | str, output: Path) -> int:
    """``mathperf report``: one line on success or on error, and the exit code."""
    output = Path(output)
    history = History(history_path)  # a file, or a postgresql:// URL
    if not history.exists():
        print(f"mathperf report: {history.path} does not exist (record runs with `pytest --mathperf` or pass --history PATH)", file=sys.stderr)
        return 1
    try:
        summaries = history.summaries()
        latest = history.latest_run()
        page = render(build_report(summaries, latest, source=str(history.path)))
    except HistoryError as error:
        print(f"mathperf report: {error}", file=sys.stderr)
        return 1
    finally:
        history.close()
    try:
        _write(output, page)
    except OSError as error:
        print(f"mathperf report: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    models = {model.model.model for summary in summaries for model in summary.models}
    print(f"wrote {output} ({len(summaries)} runs, {len(models)} models)")
    return 0


def _recorded(summaries: Sequence[RunSummary], run: RunRecord) -> bool:
    """Whether the history's last run is this one (the plugin appends before it reports)."""
    if not summaries:
        return False
    last = summaries[-1]
    return last.started_at == run.started_at and last.finished_at == run.finished_at and dict(last.environment) == dict(run.environment)


def _write(output: Path, page: str) -> None:
    """Write through a temporary file, so a reader never sees half a page."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
