"""What people and CI read about an outcome: failure texts, JUnit properties and records.

Pure functions of records and outcomes, so the terminal, JUnit XML, the history and the HTML
report all say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from pytest_mathperf.compare import ComparisonOutcome
from pytest_mathperf.judge import CaseOutcome
from pytest_mathperf.metrics import GENERATION_METRICS, MEMORY_METRICS
from pytest_mathperf.outputs.view import case_statistics, case_verdict, estimate_text, shown_generation, value_text
from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord
from pytest_mathperf.thresholds import BudgetOutcome

#: How much of a raw output a failure text and a JUnit property carry.
FAILURE_OUTPUT_CHARS = 2000
PROPERTY_OUTPUT_CHARS = 4000


def case_properties(record: CaseRecord) -> list[tuple[str, Any]]:
    """JUnit properties of a case, from its view: verdict, answers, and each metric over repeats by the statistic shown everywhere."""
    verdict = case_verdict(record)
    shown = verdict.shown
    properties: list[tuple[str, Any]] = [
        ("mathperf.model", verdict.model),
        ("mathperf.suite", verdict.suite),
        ("mathperf.verdict", verdict.verdict),
        ("mathperf.correct", verdict.correct_text),
        ("mathperf.expected", verdict.expected),
        ("mathperf.extracted", shown.extracted or ""),
        ("mathperf.reason", shown.reason),
    ]
    properties.extend((metric, round(value, 3)) for metric, value in case_statistics(record, GENERATION_METRICS))
    properties.extend((f"mathperf.{key}", value) for key, value in sorted(shown.facts.items()))
    properties.append(("mathperf.output", shown.output[-PROPERTY_OUTPUT_CHARS:]))
    return properties


def case_failure_text(outcome: CaseOutcome) -> str:
    """Expected, extracted, prompt and raw output of the generation that failed."""
    record = outcome.record
    shown = shown_generation(record)
    output = shown.output if len(shown.output) <= FAILURE_OUTPUT_CHARS else "…" + shown.output[-FAILURE_OUTPUT_CHARS:]
    lines = [
        f"{shown.status if record.passed else record.verdict}: "
        f"{record.correct_count} of {len(record.generations)} generations correct "
        f"(pass rule: {record.pass_rule}) — {record.model}",
        f"  expected : {record.expected}",
        f"  extracted: {shown.extracted or '(nothing)'}   [repeat {shown.repeat}: {shown.status}, {shown.reason}]",
        f"  prompt   : {record.prompt}",
        f"  raw output (repeat {shown.repeat}, finish: {shown.finish_reason}):",
        *("    " + line for line in output.splitlines() or [""]),
    ]
    return "\n".join(lines)


def left_to_budget_text(outcome: CaseOutcome) -> str:
    """The one line a wrong answer under an accuracy budget shows, wherever a skip reason is shown."""
    record = outcome.record
    shown = shown_generation(record)
    return (
        f"{record.verdict} ({record.correct_count}/{len(record.generations)} correct), left to the accuracy "
        f"budget: expected {record.expected}, extracted {shown.extracted or 'nothing'} ({shown.reason})"
    )


def budget_properties(outcome: BudgetOutcome, model: str, card: str, memory_source: str | None = None) -> list[tuple[str, Any]]:
    budget = outcome.budget
    source = [("mathperf.memory_source", memory_source or "")] if budget.metric in MEMORY_METRICS else []
    return source + [
        ("mathperf.model", model),
        ("mathperf.budget", budget.name),
        ("mathperf.measured", "" if outcome.measured is None else round(outcome.measured, 4)),
        ("mathperf.bound", budget.bound_text),
        ("mathperf.samples", outcome.samples),
        ("mathperf.card", card),
        ("mathperf.verdict", outcome.status),
    ]


def budget_failure_text(outcome: BudgetOutcome, model: str, card: str, memory_source: str | None = None) -> str:
    """Metric, statistic, measured, budget, card and samples: a few lines a person reads at once."""
    budget = outcome.budget
    over = f" over {outcome.samples} {'cases' if budget.metric == 'accuracy' else 'samples'}"
    statistic_name = f"{budget.statistic} " if budget.statistic else ""
    scope = {"suite": f" in suite {budget.suite}", "case": f" in case {budget.case}"}.get(budget.scope, "")
    lines = [
        f"budget {budget.name} {outcome.status} for {model}{scope} on {card}",
        f"  measured : {statistic_name}{outcome.measured_text}{over if outcome.measured is not None else ''}",
        f"  budget   : {budget.bound_text}   ({budget.source}:{budget.line})",
        f"  card     : {card}",
        f"  samples  : {outcome.samples}",
    ]
    if budget.metric in MEMORY_METRICS:
        lines.append(f"  source   : {memory_source or 'unknown'}")
    if outcome.reason:
        lines.append(f"  why      : {outcome.reason}")
    lines.extend(f"  {note}" for note in outcome.notes)
    return "\n".join(lines)


def budget_record(outcome: BudgetOutcome, model: str, card: str, nodeid: str) -> BudgetRecord:
    budget = outcome.budget
    return BudgetRecord(
        model=model,
        name=budget.name,
        metric=budget.metric,
        statistic=budget.statistic,
        scope=budget.scope,
        suite=budget.suite,
        case=budget.case,
        minimum=budget.minimum,
        maximum=budget.maximum,
        measured=outcome.measured,
        samples=outcome.samples,
        passed=outcome.passed,
        card=card,
        nodeid=nodeid,
        status=outcome.status,
        reason=outcome.reason,
    )


def comparison_record(outcome: ComparisonOutcome, model: str, baseline: str, card: str, nodeid: str) -> ComparisonRecord:
    comparison = outcome.comparison
    return ComparisonRecord(
        model=model,
        baseline=baseline,
        name=comparison.name,
        metric=comparison.metric,
        statistic=comparison.statistic,
        suite=comparison.suite,
        margin=comparison.margin_text,
        verdict=outcome.verdict,
        estimate=outcome.estimate,
        low=outcome.low,
        high=outcome.high,
        p_value=outcome.p_value,
        samples=outcome.samples,
        candidate_value=outcome.candidate_value,
        baseline_value=outcome.baseline_value,
        reason=outcome.reason,
        card=card,
        nodeid=nodeid,
        confidence=outcome.confidence if outcome.low is not None else None,
    )


def comparison_text(record: ComparisonRecord, *, short: bool = False) -> str:
    """What a regression (or an inconclusive comparison) shows: both values, the ratio and its interval."""
    what = "drop" if record.metric == "accuracy" else "ratio"
    scope = f" in suite {record.suite}" if record.suite else ""
    statistic_name = f"{record.statistic} " if record.statistic else ""
    values = (
        f"{statistic_name}{value_text(record, record.candidate_value)} against {value_text(record, record.baseline_value)}"
    )
    if short:
        return f"{what} {estimate_text(record)} against the margin {record.margin}{': ' + record.reason if record.reason else ''}"
    lines = [
        f"{record.verdict.replace('_', ' ')}: {record.name}{scope} of {record.model} against {record.baseline} on {record.card}",
        f"  measured : {values}",
        f"  {what:<9}: {estimate_text(record)}   (margin {record.margin}{_level(record)})",
        f"  p-value  : {'–' if record.p_value is None else f'{record.p_value:.3g}'}   ({record.samples} samples)",
    ]
    if record.reason:
        lines.append(f"  why      : {record.reason}")
    return "\n".join(lines)


def _level(record: ComparisonRecord) -> str:
    return "" if record.confidence is None else f"; {record.confidence:.1%} interval"


def comparison_properties(record: ComparisonRecord) -> list[tuple[str, Any]]:
    def rounded(value: float | None) -> Any:
        return "" if value is None else round(value, 5)

    return [
        ("mathperf.model", record.model),
        ("mathperf.baseline", record.baseline),
        ("mathperf.comparison", record.name),
        ("mathperf.drop" if record.metric == "accuracy" else "mathperf.ratio", rounded(record.estimate)),
        ("mathperf.ci_low", rounded(record.low)),
        ("mathperf.ci_high", rounded(record.high)),
        ("mathperf.ci_level", rounded(record.confidence)),
        ("mathperf.p_value", "" if record.p_value is None else f"{record.p_value:.4g}"),
        ("mathperf.margin", record.margin),
        ("mathperf.samples", record.samples),
        ("mathperf.verdict", record.verdict),
        ("mathperf.card", record.card),
    ]
