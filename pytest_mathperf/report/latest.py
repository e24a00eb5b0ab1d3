"""The latest run in full: its budgets, the models side by side, every case, and the cases
that flipped since the run before.

A flipped case (right → wrong or wrong → right) shows both runs' outputs one click away, so a
reader judges a regression from the answers themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_mathperf.metrics import GENERATION_METRICS, wilson_interval
from pytest_mathperf.report.formatting import bound_text, duration, title_of, unit_suffix, when, with_unit
from pytest_mathperf.report.runs import ordered
from pytest_mathperf.results import CaseRecord, ComparisonRecord, GenerationRecord, RunRecord, summary_statistic

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
    """The latest run in full: its budgets, the models side by side and every case."""

    label: str
    when: str
    duration: str
    environment: tuple[tuple[str, str], ...]
    models: tuple[str, ...]
    table: tuple[TableRow, ...]
    budgets: tuple[BudgetView, ...]
    budgets_failed: int
    comparisons: tuple[ComparisonView, ...]
    cases: tuple[CaseView, ...]
    cases_failed: int


def latest_run(run: RunRecord, label: str) -> LatestRun:
    """The latest run's view; ``label`` is its name as the trends show it."""
    models = [model.model for model in run.models]
    models += sorted({case.model for case in run.cases} - set(models))
    budgets = tuple(
        BudgetView(
            passed=b.passed,
            verdict=b.verdict,
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
        environment=tuple((key, str(run.environment[key])) for key in ordered(set(run.environment))),
        models=tuple(models),
        table=_model_table(run, models),
        budgets=budgets,
        budgets_failed=sum(1 for b in run.budgets if b.verdict == "failed"),
        comparisons=tuple(_comparison_view(c) for c in sorted(run.comparisons, key=lambda c: c.verdict != "regression")),
        cases=tuple(_case_view(case) for case in run.cases),
        cases_failed=sum(1 for case in run.cases if not case.passed),
    )


def _comparison_view(record: ComparisonRecord) -> ComparisonView:
    from pytest_mathperf.reporting import estimate_text, value_text

    return ComparisonView(
        verdict=record.verdict.replace("_", " "),
        candidate=record.model,
        baseline=record.baseline,
        name=f"{record.suite}::{record.name}" if record.suite else record.name,
        candidate_value=value_text(record, record.candidate_value),
        baseline_value=value_text(record, record.baseline_value),
        estimate=estimate_text(record),
        margin=record.margin,
        p_value="–" if record.p_value is None else f"{record.p_value:.3g}",
        reason=record.reason,
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
    for metric in ("load_s", "vram_load_gb", "vram_peak_gb", "rss_load_gb", "rss_peak_gb", "latency_sample_s", "answer_pass_s",
                   "answer_tokens_per_s"):
        add(title_of(metric), model_metric(metric))
    for metric in ("load.server_cpu_percent", "load.gpu_util_percent"):  # sampled while a load profile ran
        add(f"{title_of(metric)} mean (%)", model_metric(f"{metric}.mean"))
    for metric, name in (("ttft_ms", "p50"), ("ttft_ms", "p95"), ("tpot_ms", "p50"), ("tokens_per_s", "p50"),
                         ("decode_tokens_per_s", "p50"), ("output_tokens", "p50"), ("reasoning_tokens", "p50")):
        add(f"{title_of(metric)} {name}", generation_metric(metric, name))
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
        passed=case.passed,
        verdict=case.verdict,
        model=case.model,
        suite=case.suite,
        case=case.case,
        nodeid=case.nodeid,
        prompt=case.prompt,
        expected=case.expected,
        tags=", ".join(case.tags),
        pass_rule=case.pass_rule,
        extracted=(shown.extracted or "") if shown else "",
        correct=f"{case.correct_count}/{len(case.generations)}",
        ttft=median("ttft_ms"),
        tokens_per_s=median("tokens_per_s"),
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
    """The side's telling generation: a correct one for a case that passed, a failing one otherwise."""
    shown = next(
        (g for g in case.generations if (g.status == "correct") == case.passed),
        case.generations[0] if case.generations else None,
    )
    output, note = _shown_output(shown) if shown is not None else ("", "no generation recorded")
    return FlipSide(
        run=run,
        verdict=case.verdict,
        correct=f"{case.correct_count}/{len(case.generations)}",
        extracted=(shown.extracted or "") if shown else "",
        output=output,
        output_note=note,
    )
