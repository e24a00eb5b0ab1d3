"""What the trend report reads of a run: per-metric statistics, accuracy counts and budgets, without cases."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_mathperf.metrics import statistic
from pytest_mathperf.results import BudgetRecord, CaseRecord, ModelRecord, RunRecord

#: Statistics kept per metric in ``metric_stats`` (and in :class:`MetricStats`).
SUMMARY_STATISTICS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean", "min", "max")
#: The ``suite`` value of statistics taken over all of a model's cases.
ALL_SUITES = ""


@dataclass(frozen=True)
class MetricStats:
    """One metric's statistics over one model's generations in one run (optionally one suite)."""

    metric: str
    suite: str  # ALL_SUITES for the model as a whole
    count: int
    values: Mapping[str, float]  # statistic name → value, for SUMMARY_STATISTICS


@dataclass(frozen=True)
class ModelSummary:
    """What the trend charts need of one model in one run, without its cases."""

    model: ModelRecord
    stats: Mapping[tuple[str, str], MetricStats]  # (metric, suite) → statistics
    accuracy: Mapping[str, tuple[int, int]]  # suite (ALL_SUITES for all) → (passed cases, cases)
    budgets: tuple[BudgetRecord, ...]  # every budget of this model except per-case ones
    comparisons: tuple[tuple[str, str], ...] = ()  # (name, verdict) of each comparison of this model as candidate


@dataclass(frozen=True)
class RunSummary:
    """One run as the trend report sees it: environment, models and their summaries."""

    run_id: int | None  # None for a run that is not (yet) in a history
    started_at: float
    finished_at: float
    environment: Mapping[str, str]
    models: tuple[ModelSummary, ...]
    budgets_failed: int
    cases_failed: int
    uid: str = ""  # the run's identity across histories (kept by `mathperf history import`)
    complete: bool = True  # False for a run killed mid-way: what it measured before it stopped
    blessed: bool = False  # marked by `mathperf bless` as its card's and models' baseline


@dataclass(frozen=True)
class FleetEntry:
    """The latest complete run of one model on one card: one cell of a cards × models matrix."""

    card: str
    model: str
    run: RunSummary
    summary: ModelSummary


def metric_stats(cases: Iterable[CaseRecord]) -> dict[tuple[str, str], MetricStats]:
    """Statistics of every per-generation metric, per model-wide and per suite (NaN ignored, as budgets do)."""
    samples: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        for generation in case.generations:
            for metric, value in generation.comparable_metrics().items():
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                samples.setdefault((metric, ALL_SUITES), []).append(float(value))
                samples.setdefault((metric, case.suite), []).append(float(value))
    return {
        key: MetricStats(key[0], key[1], len(values), {name: statistic(values, name) for name in SUMMARY_STATISTICS})
        for key, values in samples.items()
    }


def accuracy_counts(cases: Iterable[CaseRecord]) -> dict[str, tuple[int, int]]:
    """Passed cases and cases, over all suites (key ALL_SUITES) and per suite."""
    counts: dict[str, list[int]] = {}
    for case in cases:
        for key in (ALL_SUITES, case.suite):
            entry = counts.setdefault(key, [0, 0])
            entry[0] += int(case.passed)
            entry[1] += 1
    return {key: (passed, total) for key, (passed, total) in counts.items()}


def summarise(run: RunRecord, run_id: int | None = None) -> RunSummary:
    """A run's summary computed from the record itself (for a run not read back from a history)."""
    models = []
    for model in run.models:
        cases = run.cases_of(model.model)
        budgets = tuple(b for b in run.budgets if b.model == model.model and b.scope != "case")
        comparisons = tuple((c.name, c.verdict) for c in run.comparisons if c.model == model.model)
        models.append(ModelSummary(model, metric_stats(cases), accuracy_counts(cases), budgets, comparisons))
    return RunSummary(
        run_id=run_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        environment=dict(run.environment),
        models=tuple(models),
        budgets_failed=sum(1 for b in run.budgets if b.verdict == "failed"),  # inconclusive is not failed
        cases_failed=sum(1 for c in run.cases if not c.passed),
    )


def latest_per_card_and_model(summaries: Iterable[RunSummary]) -> dict[tuple[str, str], FleetEntry]:
    """The newest complete run (by start time) of every (card, model) pair among ``summaries``."""
    latest: dict[tuple[str, str], FleetEntry] = {}
    for run in summaries:
        if not run.complete:
            continue
        for summary in run.models:
            key = (summary.model.card, summary.model.model)
            if key not in latest or run.started_at >= latest[key].run.started_at:
                latest[key] = FleetEntry(key[0], key[1], run, summary)
    return dict(sorted(latest.items()))
