"""The report's view model: what the page shows, built in plain Python from the run history.

Charts with their points already placed (``charts.py``), budget lines, change markers and the
latest run's tables are computed here and handed to jinja2 (``html.py``), which only draws them.
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pytest_mathperf.history import ALL_SUITES, ModelSummary, RunSummary
from pytest_mathperf.metrics import ACCURACY, GENERATION_METRICS, MODEL_METRICS, unit_of, wilson_interval
from pytest_mathperf.report.charts import Chart, ChartSample, build_chart
from pytest_mathperf.report.formatting import (
    METRIC_TITLES,
    bound_text,
    chart_scale,
    duration,
    unit_suffix,
    when,
    with_unit,
)
from pytest_mathperf.results import BudgetRecord, CaseRecord, ModelRecord, RunRecord, summary_statistic

#: Raw outputs longer than this show their end (where the answer is); the history keeps all.
MAX_OUTPUT_CHARS = 20_000
#: Environment changes listed per model × card under the charts (all are marked on the charts).
MAX_CHANGE_ROWS = 30
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
        generated=when(time.time()),
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
        charts = tuple(
            build_chart(
                key.name, key.title, key.metric,
                [_sample(summary, model, budgets_by_key[position], key) for position, (summary, model) in enumerate(runs)],
                change_points,
            )
            for key in _series_keys(runs, budgets_by_key)
        )
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


def _budgets_by_key(model: ModelSummary) -> dict[SeriesKey, list[BudgetRecord]]:
    found: dict[SeriesKey, list[BudgetRecord]] = {}
    for budget in model.budgets:
        found.setdefault(_budget_key(budget), []).append(budget)
    return found


def _sample(
    summary: RunSummary, model: ModelSummary, budgets_by_key: Mapping[SeriesKey, list[BudgetRecord]], key: SeriesKey
) -> ChartSample:
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
    scale = chart_scale(key.metric)
    minimum = next((b.minimum for b in budgets if b.minimum is not None), None)
    maximum = next((b.maximum for b in budgets if b.maximum is not None), None)
    return ChartSample(
        label=_run_label(summary),
        when=when(summary.started_at),
        value=None if value is None or math.isnan(value) else value * scale,
        minimum=None if minimum is None else minimum * scale,
        maximum=None if maximum is None else maximum * scale,
        failed=any(not budget.passed for budget in budgets),
    )


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
                    when=when(summary.started_at),
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
            measured="nothing measured" if b.measured is None else with_unit(b.measured, b.metric),
            bound=bound_text(b.minimum, b.maximum, b.metric, scaled=False) + unit_suffix(b.metric),
            samples=b.samples,
            card=b.card,
        )
        for b in sorted(run.budgets, key=lambda b: b.passed)
    )
    return LatestRun(
        label=label,
        when=when(run.started_at),
        duration=duration(run.finished_at - run.started_at),
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
            return "" if measured is None else with_unit(measured, metric)

        return value

    def generation_metric(metric: str, name: str) -> Callable[[str], str]:
        def value(model: str) -> str:
            measured = summary_statistic(cases[model], metric, name)
            return "" if measured is None else with_unit(measured, metric)

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
        return "" if measured is None else with_unit(measured, metric)

    generations = []
    for generation in case.generations:
        output, note = generation.output, ""
        if len(output) > MAX_OUTPUT_CHARS:
            note = f"the first {len(output) - MAX_OUTPUT_CHARS:,} characters are not shown; the history keeps them"
            output = output[-MAX_OUTPUT_CHARS:]
        metrics = " · ".join(
            f"{METRIC_TITLES.get(name, name)} {with_unit(value, name)}"
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


def _run_label(summary: RunSummary) -> str:
    return f"run {summary.run_id}" if summary.run_id is not None else "this run"

