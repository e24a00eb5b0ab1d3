"""Judging: what the measured generations and samples mean for the gate.

Everything that decides lives here, as plain functions over records and budgets: which budgets
judge which model (the plan, made once after selection), whether a case passed, failed or is left
to an accuracy budget, and whether a budget passed, failed or cannot judge this run. The pytest
items only translate these outcomes into pass / skip / xfail / failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from pytest_mathperf.compare import (
    CompareSettings,
    Comparison,
)
from pytest_mathperf.measurements import Measurements
from pytest_mathperf.metrics import ACCURACY, GENERATION_METRICS, MEMORY_METRICS, METRICS, MODEL_METRICS
from pytest_mathperf.thresholds import Budget, BudgetOutcome, Thresholds, evaluate

if TYPE_CHECKING:
    from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord

#: How a stored baseline is named: ``blessed run 12``, ``blessed runs 10, 11, 12``.
BLESSED_PREFIX = "blessed run"


def blessed_name(run_ids: Iterable[int]) -> str:
    ids = sorted(run_ids)
    return f"{BLESSED_PREFIX}{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"


@dataclass(frozen=True)
class ModelPlan:
    """The budgets that judge one model in this run, or why none do."""

    model: str
    budgets: tuple[Budget, ...] = ()
    no_budget_reason: str | None = None  # set when thresholds.yaml has no entry for this card and model
    comparisons: tuple[Comparison, ...] = ()  # margins against the baseline, for a candidate
    baseline: str | None = None  # the model of this run it is compared with

    def accuracy_budget_applies(self, suite: str, case: str) -> bool:
        return any(budget.metric == ACCURACY and judges(budget, suite, case) for budget in self.budgets)


def judges(rule: Budget | Comparison, suite: str, case: str | None) -> bool:
    """Whether a budget or comparison judges what one case of ``suite`` measured (``case`` None: the suite's load profile).

    The one answer to "which cases does this rule judge": the budget plan, the samples a budget
    is taken over, the cases ``--lf`` runs again with a budget and a comparison's cases all ask here.
    """
    if rule.scope == "load":
        return case is None
    if rule.scope == "case":
        return case is not None and suite == rule.suite and case == getattr(rule, "case", None)
    if rule.scope == "suite":
        return suite == rule.suite
    return True


#: What the ``no_budget`` policy does to a model that nothing judged, in the words the summary uses.
NO_BUDGET_EFFECT = {"fail": "this fails the run", "skip": "nothing judged it", "record": "recorded only"}


@dataclass(frozen=True)
class BudgetPlan:
    """Which budgets judge which model, decided once, after ``-k``/``-m`` selection."""

    models: Mapping[str, ModelPlan] = field(default_factory=dict)
    policy: str = "skip"  # what a model with nothing to judge it by gets: skip | fail | record
    compare: CompareSettings = field(default_factory=CompareSettings)

    def for_model(self, model: str) -> ModelPlan:
        return self.models.get(model, ModelPlan(model))


@dataclass(frozen=True)
class SelectedModel:
    """What selection left of one model: its name in thresholds.yaml, its suites and per-case budgets."""

    model: str
    name: str
    suites: tuple[str, ...]
    case_budgets: tuple[Budget, ...] = ()


def plan_budgets(
    thresholds: Thresholds | None, card: str, selected: Iterable[SelectedModel], baselines: Mapping[str, str] | None = None
) -> BudgetPlan:
    """The budget plan for the models that have selected cases.

    A model that nothing judges (no entry for this card and model, or an entry whose budgets are
    all for suites this run does not have, and no comparison) gets the file's ``no_budget``
    policy and the reason, so a gate never passes silently having judged nothing. Every model but
    ``baselines`` (candidate → its baseline: a model of this run, or a blessed run) is judged
    against it by its entry's ``compare:`` margins.
    """
    plans: dict[str, ModelPlan] = {}
    selected = list(selected)
    # A baseline whose cases -k, -m or the paths deselected keeps its comparisons: each is then
    # reported as unable to judge, with the reason, instead of vanishing from the run.
    baselines = dict(baselines or {})
    compared = {  # baselines some candidate is compared with: the comparisons judge by them
        baselines[model.model]
        for model in selected
        if model.model in baselines and thresholds is not None and thresholds.comparisons_for(card, model.name, model.suites)
    }
    for model in selected:
        if thresholds is None:
            plans[model.model] = ModelPlan(model.model, model.case_budgets)
            continue
        budgets = (*(thresholds.budgets_for(card, model.name, model.suites) or ()), *model.case_budgets)
        baseline = baselines.get(model.model)
        comparisons = tuple(thresholds.comparisons_for(card, model.name, model.suites)) if baseline else ()
        judged = budgets or comparisons or model.model in compared
        reason = None if judged else thresholds.why_no_budget(card, model.name, model.suites, has_baseline=baseline is not None)
        plans[model.model] = ModelPlan(
            model.model, budgets, no_budget_reason=reason, comparisons=comparisons, baseline=baseline if comparisons else None
        )
    if thresholds is None:
        return BudgetPlan(plans)
    return BudgetPlan(plans, thresholds.no_budget, thresholds.compare_settings)


def judged_by_nothing(
    plan: BudgetPlan,
    judged: Iterable[BudgetRecord],
    unjudged: Iterable[Mapping[str, str]],
    comparisons: Iterable[ComparisonRecord],
) -> dict[str, list[str]]:
    """Models whose budgets all turned out unjudgeable (``name: why`` for each), with no comparison judged either.

    The plan counts a budget as applied before the run; one on a metric the run cannot measure
    (VRAM on a CPU, TTFAT from a backend that does not report it) judges nothing, and a model
    judged only by such budgets must meet the ``no_budget`` policy as one with none would.
    ``unjudged`` holds each such budget's ``model``, ``name`` and ``reason``.
    """
    judged_models = {record.model for record in judged}
    for comparison in comparisons:
        if comparison.verdict != "cannot_judge":
            judged_models.update((comparison.model, comparison.baseline))
    found: dict[str, list[str]] = {}
    for entry in unjudged:
        model = entry["model"]
        if plan.for_model(model).no_budget_reason is None and model not in judged_models:
            found.setdefault(model, []).append(f"{entry['name']}: {entry['reason']}")
    return found


CaseStatus = Literal["passed", "failed", "left_to_budget"]


@dataclass(frozen=True)
class CaseOutcome:
    """A case's verdict for the gate: passed, failed, or a wrong answer left to an accuracy budget."""

    status: CaseStatus
    record: CaseRecord


def judge_case(record: CaseRecord, plan: ModelPlan, *, strict: bool) -> CaseOutcome:
    """A backend error always fails its case; a wrong answer fails it unless an accuracy budget decides."""
    has_error = any(generation.status == "error" for generation in record.generations)
    if record.passed and not has_error:
        return CaseOutcome("passed", record)
    if not has_error and not strict and plan.accuracy_budget_applies(record.suite, record.case):
        return CaseOutcome("left_to_budget", record)
    return CaseOutcome("failed", record)


def cannot_judge(budget: Budget, reason: str) -> BudgetOutcome:
    return BudgetOutcome(budget, None, 0, "cannot_judge", reason=reason)


def judge_budget(measured: Measurements, budget: Budget) -> BudgetOutcome:
    """Judge one budget over what this run measured of a model, or say why it cannot."""
    model = measured.model
    if measured.load_error is not None:
        return cannot_judge(budget, f"{model} did not load, nothing to judge")
    if budget.metric in MEMORY_METRICS and measured.served_elsewhere:
        return cannot_judge(budget, f"{model} is served by another process: its memory is the server's, not measured here")
    if budget.scope == "load" and not measured.load_results:
        return cannot_judge(budget, "no load profile ran for this model (a suite's `load:` block, with --mathperf-backend openai)")
    samples = budget_samples(measured, budget)
    if not samples and not measured.cases and not measured.load_results:
        return cannot_judge(budget, f"no case of {model} ran, so there is nothing to judge")
    if not samples and not measured.allow_estimated_counts and _estimated_only(measured, budget.metric):
        return cannot_judge(
            budget,
            f"every {budget.metric} of {model} rests on an estimated token count (the server sent no usage); "
            "--mathperf-allow-estimated-counts accepts them",
        )
    if not samples and not _measures(measured, budget.metric):
        return cannot_judge(budget, f"{budget.metric} is not measured for {model} on {measured.card}")
    outcome = evaluate(budget, samples)
    busy = measured.busy if METRICS[budget.metric].timing else None
    if busy and outcome.status == "failed":
        # slower neighbours are no evidence against the model: say so instead of failing
        return replace(outcome, status="inconclusive", reason=f"the host was busy: {busy}")
    if outcome.status == "failed" and budget.scope == "load":
        notes = []
        for result in measured.load_results:
            notes.extend(f"failures : {line}" for line in result.errors())
            warning = result.client_warning()
            if warning:
                notes.append(f"client   : {warning}")
        outcome = outcome.with_notes(notes)
    return outcome


def budget_samples(measured: Measurements, budget: Budget) -> list[float]:
    """The values a budget's statistic is taken over (accuracy: 1.0/0.0 per case it judges)."""
    cases = [record for record in measured.cases if judges(budget, record.suite, record.case)]
    if budget.metric == ACCURACY:
        return [1.0 if record.passed else 0.0 for record in cases]
    if budget.metric in GENERATION_METRICS:
        return [value for record in cases for value in record.samples(budget.metric, estimated=measured.allow_estimated_counts)]
    if budget.metric in MODEL_METRICS:
        value = measured.model_metrics.get(budget.metric)
        return [] if value is None else [value]
    if budget.scope == "load":
        return [value for result in measured.load_results for value in result.budget_samples(budget.metric)]
    return []


def _estimated_only(measured: Measurements, metric: str) -> bool:
    """Whether every value of ``metric`` rests on an estimated token count (and budgets refuse those)."""
    generations = [g for record in measured.cases for g in record.generations if metric in g.metrics]
    return bool(generations) and all(metric in g.estimated_metrics for g in generations)


def _measures(measured: Measurements, metric: str) -> bool:
    """Whether this run measures ``metric`` for the model at all (no TTFAT in-process, no VRAM on a CPU)."""
    if metric in MODEL_METRICS:
        return metric in measured.model_metrics
    if metric in GENERATION_METRICS:
        return any(metric in g.metrics for record in measured.cases for g in record.generations)
    return True


def suite_budgets_judging_nothing(
    thresholds: Thresholds | None, card: str, models: Iterable[str], suites: Iterable[str], *, every_suite: bool
) -> list[str]:
    """One warning per suite budget or margin of this card's entries for ``models`` whose suite no
    collected file defines: it judges nothing (a ``SMALL`` beside ``small``). With only some suite
    files collected (``every_suite`` false), only a name a small edit away from a collected suite is
    warned about: the others belong to files this run left out."""
    import difflib

    if thresholds is None:
        return []
    known = list(dict.fromkeys(suites))
    warnings: dict[tuple[str, int], str] = {}
    entries = {id(entry): entry for model in models for entry in thresholds.entries_for(card, model)}
    for entry in entries.values():
        for rule in (*entry.budgets, *entry.comparisons):
            if rule.scope != "suite" or rule.suite in known:
                continue
            close = [name for name in known if name.lower() == str(rule.suite).lower()]
            close = close or difflib.get_close_matches(str(rule.suite), known, n=1, cutoff=0.75)
            if not (every_suite or close):
                continue
            hint = f"; did you mean {close[0]!r}?" if close else "; check the suite's name, or remove the budget"
            warnings[(str(rule.source), rule.line)] = (
                f"mathperf: {rule.source}:{rule.line}: {rule.name} is for suite {rule.suite!r}, which no collected "
                f"suite file defines, so it judges nothing{hint}"
            )
    return list(warnings.values())
