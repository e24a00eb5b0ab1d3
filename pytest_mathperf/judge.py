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

from pytest_mathperf.compare import CompareSettings, Comparison
from pytest_mathperf.metrics import ACCURACY, MEMORY_METRICS, METRICS
from pytest_mathperf.thresholds import Budget, BudgetOutcome, Thresholds, evaluate

if TYPE_CHECKING:
    from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord
    from pytest_mathperf.runner import Runner

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

    def accuracy_budget_applies(self, suite: str) -> bool:
        return any(
            budget.metric == ACCURACY and (budget.scope == "model" or budget.suite == suite) for budget in self.budgets
        )


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
        reason = None if judged else thresholds.why_no_budget(card, model.name, model.suites)
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
    if not has_error and not strict and plan.accuracy_budget_applies(record.suite):
        return CaseOutcome("left_to_budget", record)
    return CaseOutcome("failed", record)


def cannot_judge(budget: Budget, reason: str) -> BudgetOutcome:
    return BudgetOutcome(budget, None, 0, "cannot_judge", reason=reason)


def judge_budget(runner: Runner, model: str, budget: Budget) -> BudgetOutcome:
    """Judge one budget over what this run measured of ``model``, or say why it cannot."""
    session = runner.sessions[model]
    if session.load_error is not None:
        return cannot_judge(budget, f"{model} did not load, nothing to judge")
    if budget.metric in MEMORY_METRICS and session.load_info is not None and session.load_info.device is None:
        return cannot_judge(budget, f"{model} is served by another process: its memory is the server's, not measured here")
    if budget.scope == "load" and not session.load_results:
        return cannot_judge(budget, "no load profile ran for this model (a suite's `load:` block, with --mathperf-backend openai)")
    samples = runner.samples(model, budget)
    if not samples and not session.cases and not session.load_results:
        return cannot_judge(budget, f"no case of {model} ran, so there is nothing to judge")
    if not samples and not runner.options.allow_estimated_counts and runner.estimated_only(model, budget.metric):
        return cannot_judge(
            budget,
            f"every {budget.metric} of {model} rests on an estimated token count (the server sent no usage); "
            "--mathperf-allow-estimated-counts accepts them",
        )
    if not samples and not runner.measures(model, budget.metric):
        return cannot_judge(budget, f"{budget.metric} is not measured for {model} on {runner.card}")
    outcome = evaluate(budget, samples)
    busy = runner.busy_reason(model) if METRICS[budget.metric].timing else None
    if busy and outcome.status == "failed":
        # slower neighbours are no evidence against the model: say so instead of failing
        return replace(outcome, status="inconclusive", reason=f"the host was busy: {busy}")
    if outcome.status == "failed" and budget.scope == "load":
        notes = []
        for result in session.load_results.values():
            notes.extend(f"failures : {line}" for line in result.errors())
            warning = result.client_warning()
            if warning:
                notes.append(f"client   : {warning}")
        outcome = outcome.with_notes(notes)
    return outcome
