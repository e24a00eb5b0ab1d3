"""The latest run in full: its budgets, the models side by side, every case, and the cases
that flipped since the run before.

A flipped case (right → wrong or wrong → right) shows both runs' outputs one click away, so a
reader judges a regression from the answers themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_mathperf.metrics import GENERATION_METRICS
from pytest_mathperf.outputs.view import CaseVerdict, ComparisonVerdict, Counts, RunView, shown_generation
from pytest_mathperf.report.formatting import duration, title_of, when, with_unit
from pytest_mathperf.report.runs import ordered
from pytest_mathperf.results import CaseRecord, GenerationRecord, RunRecord

#: Raw outputs longer than this show their end (where the answer is); the history keeps all.
MAX_OUTPUT_CHARS = 20_000


@dataclass(frozen=True)
class TableRow:
    label: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class BudgetView:
    passed: bool
    verdict: str  # passed | failed | inconclusive
    model: str
    name: str
    where: str
    measured: str
    bound: str
    samples: int
    card: str


@dataclass(frozen=True)
class ComparisonView:
    """One candidate-against-baseline row of the latest run."""

    verdict: str  # regression | within margin | inconclusive
    candidate: str
    baseline: str
    name: str
    candidate_value: str
    baseline_value: str
    estimate: str
    margin: str
    p_value: str
    reason: str


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
    tags: str
    pass_rule: str
    extracted: str
    correct: str  # "2/3"
    ttft: str
    tokens_per_s: str
    generations: tuple[GenerationView, ...]


@dataclass(frozen=True)
class LatestRun:
    """The latest run in full, from its view: the gate's verdict, its budgets, the models side by side and every case."""

    label: str
    when: str
    duration: str
    gate: str  # passed | failed | "" (rendered from the history: no session, no exit status)
    headline: str  # "gate FAILED (exit status 1): 2 comparisons regressed: …"
    failed_because: tuple[str, ...]
    counts: str  # every gate item: "25 passed, 2 failed, 3 inconclusive"
    budget_counts: str  # "3 passed, 0 failed, 3 inconclusive"
    environment: tuple[tuple[str, str], ...]
    models: tuple[str, ...]
    table: tuple[TableRow, ...]
    budgets: tuple[BudgetView, ...]
    budgets_failed: int
    comparisons: tuple[ComparisonView, ...]
    cases: tuple[CaseView, ...]
    cases_failed: int


def latest_run(view: RunView, label: str) -> LatestRun:
    """The latest run's page section; ``label`` is its name as the trends show it."""
    run = view.record
    header, *rows = view.table
    budgets = tuple(
        BudgetView(
            passed=b.verdict == "passed", verdict=b.verdict, model=b.model, name=b.name,
            where=" · ".join(part for part in (b.scope, b.suite, b.case) if part),
            measured=b.measured, bound=b.bound, samples=b.samples, card=b.card,
        )
        for b in sorted(view.budgets, key=lambda b: {"failed": 0, "inconclusive": 1}.get(b.verdict, 2))
    )
    return LatestRun(
        label=label,
        when=when(run.started_at),
        duration=duration(run.finished_at - run.started_at),
        gate="" if view.gate_passed is None else ("passed" if view.gate_passed else "failed"),
        headline=view.headline,
        failed_because=view.failed_because,
        counts=view.counts.text(),
        budget_counts=Counts.of(b.status for b in view.budgets).text() if view.budgets else "",
        environment=tuple((key, str(run.environment[key])) for key in ordered(set(run.environment))),
        models=header.values,
        table=tuple(TableRow(row.label, row.values) for row in rows),
        budgets=budgets,
        budgets_failed=sum(1 for b in view.budgets if b.verdict == "failed"),
        comparisons=tuple(_comparison_view(c) for c in sorted(view.comparisons, key=lambda c: c.verdict != "regression")),
        cases=tuple(_case_view(case, record) for case, record in zip(view.cases, run.cases)),
        cases_failed=sum(1 for case in view.cases if not case.passed),
    )


def _comparison_view(record: ComparisonVerdict) -> ComparisonView:
    return ComparisonView(
        verdict=record.verdict.replace("_", " "),
        candidate=record.model,
        baseline=record.baseline,
        name=record.title,
        candidate_value=record.candidate_value,
        baseline_value=record.baseline_value,
        estimate=record.estimate,
        margin=record.margin,
        p_value=record.p_value,
        reason=record.reason,
    )


def _case_view(verdict: CaseVerdict, case: CaseRecord) -> CaseView:
    generations = []
    for generation in case.generations:
        output, note = _shown_output(generation)
        metrics = " · ".join(
            f"{title_of(name)} {with_unit(value, name)}"
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
        passed=verdict.passed,
        verdict=verdict.verdict,
        model=verdict.model,
        suite=verdict.suite,
        case=verdict.case,
        nodeid=verdict.nodeid,
        prompt=verdict.prompt,
        expected=verdict.expected,
        tags=", ".join(verdict.tags),
        pass_rule=verdict.pass_rule,
        extracted=verdict.shown.extracted or "",
        correct=verdict.correct_text,
        ttft=verdict.ttft,
        tokens_per_s=verdict.tokens_per_s,
        generations=tuple(generations),
    )


def _shown_output(generation: GenerationRecord) -> tuple[str, str]:
    """The output as shown (its end, where the answer is, when very long) and a note saying so."""
    output = generation.output
    if len(output) <= MAX_OUTPUT_CHARS:
        return output, ""
    note = f"the first {len(output) - MAX_OUTPUT_CHARS:,} characters are not shown; the history keeps them"
    return output[-MAX_OUTPUT_CHARS:], note


# -- cases that flipped -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlipSide:
    """One case in one of the two runs: its verdict, answer and first telling output."""

    run: str
    verdict: str
    correct: str  # "2/3"
    extracted: str
    output: str
    output_note: str


@dataclass(frozen=True)
class CaseFlip:
    direction: str  # "right → wrong" | "wrong → right"
    regressed: bool
    suite: str
    case: str
    prompt: str
    expected: str
    before: FlipSide
    after: FlipSide


@dataclass(frozen=True)
class FlipGroup:
    """The flips of one model on one card between its last two runs."""

    anchor: str  # the trend panel of this model × card
    model: str
    card: str
    before: str
    after: str
    flips: tuple[CaseFlip, ...]  # regressions first
    compared: int  # cases present in both runs
    added: tuple[str, ...]  # suite/case only in the later run
    removed: tuple[str, ...]


def case_flips(
    anchor: str, model: str, card: str, before: tuple[str, RunRecord], after: tuple[str, RunRecord]
) -> FlipGroup:
    """Which of the model's cases changed verdict between two runs (matched by suite and case id)."""
    (before_name, before_run), (after_name, after_run) = before, after
    old = {(case.suite, case.case): case for case in before_run.cases_of(model)}
    new = {(case.suite, case.case): case for case in after_run.cases_of(model)}
    flips = []
    for key, case in new.items():
        previous = old.get(key)
        if previous is None or previous.passed == case.passed:
            continue
        flips.append(
            CaseFlip(
                direction="wrong → right" if case.passed else "right → wrong",
                regressed=not case.passed,
                suite=case.suite,
                case=case.case,
                prompt=case.prompt,
                expected=case.expected,
                before=_flip_side(before_name, previous),
                after=_flip_side(after_name, case),
            )
        )
    flips.sort(key=lambda flip: not flip.regressed)
    return FlipGroup(
        anchor=anchor,
        model=model,
        card=card,
        before=before_name,
        after=after_name,
        flips=tuple(flips),
        compared=len(set(old) & set(new)),
        added=tuple(f"{suite}/{case}" for suite, case in new if (suite, case) not in old),
        removed=tuple(f"{suite}/{case}" for suite, case in old if (suite, case) not in new),
    )


def _flip_side(run: str, case: CaseRecord) -> FlipSide:
    """The side's telling generation: a correct one for a case that passed, else the one every surface shows of a failure."""
    if not case.generations:
        shown = None
    elif case.passed:
        shown = next((g for g in case.generations if g.status == "correct"), case.generations[0])
    else:
        shown = shown_generation(case)
    output, note = _shown_output(shown) if shown is not None else ("", "no generation recorded")
    return FlipSide(
        run=run,
        verdict=case.verdict,
        correct=f"{case.correct_count}/{len(case.generations)}",
        extracted=(shown.extracted or "") if shown else "",
        output=output,
        output_note=note,
    )
