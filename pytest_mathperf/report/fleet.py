"""The fleet view: the latest verdict of every model on every card, and one model's trends on
its cards side by side.

Teams that run the gate on several runners (one card each) into one history see here whether a
model holds its budgets everywhere, and whether a step on one card shows on the others. Charts
side by side share their y-axis, so equal heights mean equal values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_mathperf.history import ALL_SUITES
from pytest_mathperf.metrics import ACCURACY
from pytest_mathperf.outputs.view import Counts, comparison_status, model_verdict, shown_statistic
from pytest_mathperf.report.charts import Chart, domain_of
from pytest_mathperf.report.formatting import title_of, when, with_unit
from pytest_mathperf.report.trends import RunDetails, Trend, chart_samples, key_series, shared_chart

#: The per-generation metrics a cell of the matrix shows (statistic p50), in this order.
CELL_METRICS: tuple[str, ...] = ("ttft_ms", "tokens_per_s")  # each by the statistic every surface shows it by
#: The peak memory a cell shows: the card's own if measured, else the process's.
CELL_MEMORY: tuple[tuple[str, str], ...] = (("vram_peak_gb", "VRAM peak"), ("rss_peak_gb", "RSS peak"))


@dataclass(frozen=True)
class FleetCell:
    """One model on one card, as of the latest run that had it."""

    anchor: str  # its trend panel
    run: str
    when: str
    verdict: str  # passed | failed | inconclusive | no budgets | load error
    budgets: str  # "5 passed, 1 failed"
    failed: tuple[str, ...]  # names of the failed budgets
    metrics: tuple[tuple[str, str], ...]  # (what, value)


@dataclass(frozen=True)
class FleetRow:
    card: str
    cells: tuple[FleetCell | None, ...]  # one per model; None where the model never ran on this card


@dataclass(frozen=True)
class Fleet:
    models: tuple[str, ...]
    rows: tuple[FleetRow, ...]


@dataclass(frozen=True)
class ComparisonRow:
    title: str
    charts: tuple[Chart | None, ...]  # one per card; None where the card did not measure it


@dataclass(frozen=True)
class CardComparison:
    """One model's key trends, a column per card."""

    model: str
    cards: tuple[str, ...]
    anchors: tuple[str, ...]
    rows: tuple[ComparisonRow, ...]


def fleet(trends: Sequence[Trend]) -> Fleet:
    models = tuple(dict.fromkeys(trend.model for trend in trends))
    cards = sorted({trend.card for trend in trends})
    by_key = {(trend.card, trend.model): trend for trend in trends}
    rows = tuple(
        FleetRow(card, tuple(_cell(by_key[(card, model)]) if (card, model) in by_key else None for model in models))
        for card in cards
    )
    return Fleet(models=models, rows=rows)


def _cell(trend: Trend) -> FleetCell:
    summary, model = trend.runs[-1]
    failed = tuple(budget.name + (f" · {budget.suite}" if budget.suite else "") for budget in model.budgets if budget.verdict == "failed")
    failed += tuple(f"{name} regressed" for name, verdict in model.comparisons if verdict == "regression")
    budgets = Counts.of(budget.verdict for budget in model.budgets)
    comparisons = Counts.of(comparison_status(verdict) for _, verdict in model.comparisons)
    decided = model_verdict(model.model.load_error, budgets, comparisons)
    verdict = {"not loaded": "load error", "not judged": "no budgets"}.get(decided, decided)
    metrics: list[tuple[str, str]] = []
    passed, cases = model.accuracy.get(ALL_SUITES, (0, 0))
    if cases:
        metrics.append(("accuracy", f"{with_unit(passed / cases, ACCURACY)} ({passed}/{cases})"))
    for metric in CELL_METRICS:
        stats, shown = model.stats.get((metric, ALL_SUITES)), shown_statistic(metric)
        if stats is not None and shown in stats.values:
            metrics.append((f"{title_of(metric)} {shown}", with_unit(stats.values[shown], metric)))
    for metric, title in CELL_MEMORY:
        if metric in model.model.metrics:
            metrics.append((title, with_unit(model.model.metrics[metric], metric)))
            break
    return FleetCell(
        anchor=trend.anchor,
        run=trend.names[-1].full,
        when=when(summary.started_at),
        verdict=verdict,
        budgets=budgets.text() if budgets.total else "",
        failed=failed,
        metrics=tuple(metrics),
    )


def card_comparisons(trends: Sequence[Trend], details: RunDetails) -> tuple[CardComparison, ...]:
    """For each model measured on more than one card, its key charts side by side on shared axes."""
    comparisons = []
    for model in dict.fromkeys(trend.model for trend in trends):
        mine = sorted((trend for trend in trends if trend.model == model), key=lambda trend: trend.card)
        if len(mine) < 2:
            continue
        keys = list(dict.fromkeys(key for trend in mine for key in key_series(trend)))
        rows = []
        for key in keys:
            present = [trend for trend in mine if key in key_series(trend)]
            samples = {trend.card: chart_samples(trend, key, details) for trend in present}
            domain = domain_of(key.metric, samples.values())
            charts = tuple(
                shared_chart(key, samples[trend.card], trend, domain) if trend.card in samples else None for trend in mine
            )
            if any(chart is not None and chart.runs for chart in charts):
                rows.append(ComparisonRow(key.title, charts))
        comparisons.append(
            CardComparison(
                model=model,
                cards=tuple(trend.card for trend in mine),
                anchors=tuple(trend.anchor for trend in mine),
                rows=tuple(rows),
            )
        )
    return tuple(comparisons)
