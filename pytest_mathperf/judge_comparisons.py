"""Judging a candidate against its baseline: a model of this run (interleaved, or in turns where
the models did not fit together) or the blessed runs of a stored history.

What each kind of baseline can tell differs, and the interval says so:
- interleaved in this run: both models met the same host, repeat by repeat, so the cases'
  bootstrap holds everything that varies, and a busy host is shared, not a reason to look away;
- in turns: each model met its own stretch of the run, so the interval carries a between-turn
  term and a busy host leaves timings inconclusive;
- blessed runs: the baseline was measured in other processes, at other times, so the interval
  carries the spread between those runs (at least three are needed to know it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pytest_mathperf.compare import (
    Comparison,
    ComparisonOutcome,
    RunSpread,
    compare_accuracy,
    compare_samples,
    compare_values,
    family_confidence,
    planned_looks,
    spread_between_runs,
)
from pytest_mathperf.metrics import ACCURACY, METRICS

if TYPE_CHECKING:
    from pytest_mathperf.judge import BudgetPlan
    from pytest_mathperf.results import CaseRecord, RunRecord
    from pytest_mathperf.runner import Runner

#: Blessed runs a timing comparison needs: fewer cannot show how much runs differ.
MIN_BLESSED_RUNS = 3
#: Standard deviation of the log ratio between two models' turns within one process, measured on a
#: shared 2-core runner (0.12 for TTFT p50, 0.24 for tokens/s mean); the larger stands for both.
TURN_LOG_SD = 0.24


@dataclass(frozen=True)
class JudgedComparison:
    """A comparison's outcome and the case records it was decided on, where ``more`` extended them."""

    outcome: ComparisonOutcome
    extended: tuple[CaseRecord, ...] = ()


def judge_comparison(
    runner: Runner, plan: BudgetPlan, candidate: str, comparison: Comparison, stored: Sequence[RunRecord] = (), looks: int = 1
) -> ComparisonOutcome:
    """Judge one margin of ``candidate`` against its baseline, or say why it cannot.

    The confidence of each interval is corrected for the candidate's comparisons and for the
    looks ``more`` may take (Bonferroni over both).
    """
    model_plan = plan.for_model(candidate)
    baseline = model_plan.baseline
    assert baseline is not None
    if runner.sessions[candidate].load_error is not None:
        return ComparisonOutcome(comparison, "cannot_judge", reason=f"{candidate} did not load")
    cand_cases = [case for case in runner.sessions[candidate].cases.values() if _in_scope(case, comparison)]
    confidence = family_confidence(plan.compare.confidence, len(model_plan.comparisons) * looks)
    if stored:
        return _against_stored(runner, candidate, comparison, cand_cases, stored, confidence)
    if runner.sessions[baseline].load_error is not None:
        return ComparisonOutcome(comparison, "cannot_judge", reason=f"{baseline} did not load")
    base_cases = [case for case in runner.sessions[baseline].cases.values() if _in_scope(case, comparison)]
    if not base_cases:
        scope = f" of suite {comparison.suite}" if comparison.scope == "suite" else ""
        return ComparisonOutcome(
            comparison, "cannot_judge",
            reason=f"the baseline ran no case{scope}: this run's selection (-k, -m or paths) left out its "
            "cases; select them beside the candidate's",
        )
    interleaved = runner.schedule == "interleaved"
    spread = None if interleaved else RunSpread(TURN_LOG_SD, None, "between the models' turns (they were not interleaved)")
    base_metrics = runner.sessions[baseline].model_metrics()
    outcome = _compare(runner, candidate, comparison, cand_cases, base_cases, base_metrics, confidence, spread)
    busy = [f"{name}: {why}" for name in (candidate, baseline) if (why := runner.busy_reason(name))]
    if not busy or not METRICS[comparison.metric].timing or outcome.verdict == "cannot_judge":
        return outcome
    if interleaved:  # both models met the same load, repeat by repeat: judged, and the load shown
        return _noted(outcome, "the host was busy, and both models shared it, interleaved: " + "; ".join(busy))
    return replace(outcome, verdict="inconclusive", busy=True, reason="the host was busy: " + "; ".join(busy))


def _against_stored(
    runner: Runner, candidate: str, comparison: Comparison, cand_cases: list[CaseRecord], stored: Sequence[RunRecord],
    confidence: float,
) -> ComparisonOutcome:
    """Against blessed runs: like is compared with like (the suites this run selected); timings
    carry the spread between the blessed runs, which needs at least ``MIN_BLESSED_RUNS``."""
    suites = {case.suite for case in cand_cases}
    runs = [[case for case in run.cases_of(candidate) if _in_scope(case, comparison) and case.suite in suites] for run in stored]
    base_metrics = next(record for record in stored[0].models if record.model == candidate).metrics
    spread = None
    if METRICS[comparison.metric].timing and METRICS[comparison.metric].kind != "model":
        if len(stored) < MIN_BLESSED_RUNS:
            return ComparisonOutcome(
                comparison, "cannot_judge",
                reason=f"{len(stored)} blessed run(s): a timing against stored runs needs {MIN_BLESSED_RUNS} to know how much "
                f"runs differ; bless {MIN_BLESSED_RUNS - len(stored)} more (`mathperf bless RUN RUN RUN`)",
            )
        spread = _between_runs(runner, comparison, runs)
    base_cases = [case for run in runs for case in run]
    outcome = _compare(runner, candidate, comparison, cand_cases, base_cases, base_metrics, confidence, spread, runs=len(runs))
    if not runner.options.busy_guard or not METRICS[comparison.metric].timing or outcome.verdict == "cannot_judge":
        return outcome
    busy = [f"{candidate}: {why}" for why in [runner.busy_reason(candidate)] if why]
    busy += [f"a blessed run: {why}" for run in stored for record in run.models if record.model == candidate
             if (why := record.details.get("host_busy"))]
    if busy:  # a load that only one side met is no evidence either way
        return replace(outcome, verdict="inconclusive", busy=True, reason="the host was busy: " + "; ".join(busy))
    return outcome


def _between_runs(runner: Runner, comparison: Comparison, runs: list[list[CaseRecord]]) -> RunSpread | None:
    """How much the statistic moves from one blessed run to the next, over the cases compared."""
    from pytest_mathperf.metrics import statistic

    estimated = runner.options.allow_estimated_counts
    levels = []
    for cases in runs:
        values = [value for case in cases for value in case.samples(comparison.metric, estimated=estimated)]
        if values and min(values) > 0:
            levels.append(math.log(statistic(values, comparison.statistic or "mean")))
    return spread_between_runs(levels, f"between the {len(levels)} blessed runs")


def _compare(
    runner: Runner, candidate: str, comparison: Comparison, cand_cases: list[CaseRecord], base_cases: list[CaseRecord],
    base_metrics: dict[str, float], confidence: float, spread: RunSpread | None, runs: int = 1,
) -> ComparisonOutcome:
    if comparison.metric == ACCURACY:
        shares: dict[tuple[str, str], list[bool]] = {}
        for case in base_cases:  # over several blessed runs: the share of them that passed the case
            shares.setdefault((case.suite, case.case), []).append(case.passed)
        return compare_accuracy(
            comparison,
            {(case.suite, case.case): case.passed for case in cand_cases},
            {key: sum(passed) / len(passed) for key, passed in shares.items()},  # type: ignore[misc]
            confidence,
        )
    if METRICS[comparison.metric].kind == "model":
        return compare_values(comparison, runner.sessions[candidate].model_metrics().get(comparison.metric), base_metrics.get(comparison.metric))
    estimated = runner.options.allow_estimated_counts
    baseline: dict[tuple[str, str, int], float] = {}
    seen: dict[tuple[str, str], int] = {}
    for case in base_cases:  # the same case from several runs: its generations pooled
        offset = seen.get((case.suite, case.case), 0)
        values = case.keyed_samples(comparison.metric, estimated=estimated)
        baseline.update({(suite, name, offset + index): value for index, ((suite, name, _), value) in enumerate(sorted(values.items()))})
        seen[(case.suite, case.case)] = offset + len(values)
    candidate_samples = {key: value for case in cand_cases for key, value in case.keyed_samples(comparison.metric, estimated=estimated).items()}
    return compare_samples(comparison, candidate_samples, baseline, confidence, spread)


def _noted(outcome: ComparisonOutcome, note: str) -> ComparisonOutcome:
    return replace(outcome, reason=f"{outcome.reason}; {note}" if outcome.reason else note)


def _in_scope(case: CaseRecord, comparison: Comparison) -> bool:
    return comparison.scope == "model" or case.suite == comparison.suite


def judge_with_more(
    runner: Runner, plan: BudgetPlan, candidate: str, comparison: Comparison, stored: Sequence[RunRecord] = ()
) -> JudgedComparison:
    """``inconclusive: more``: while a comparison is inconclusive, double the repeats of both models
    on the cases in its scope (new repeats, new seeds), up to ``max_repeats``, and look again.

    The looks are planned ahead (one per doubling) and every look's interval is corrected for all
    of them, and the cases are resampled as clusters, so more repeats of the same cases cannot
    claim more than those cases show: whatever look decides, the family's error stays ≤ α. Where
    more repeats cannot help (a stored baseline, which cannot run again; accuracy under greedy
    decoding, which repeats the same answers) the verdict says so instead.
    """
    settings = plan.compare
    baseline = plan.for_model(candidate).baseline
    if settings.inconclusive != "more" or not settings.max_repeats or baseline is None or METRICS[comparison.metric].kind == "model":
        return JudgedComparison(judge_comparison(runner, plan, candidate, comparison, stored))
    keys = [key for key, record in runner.sessions[candidate].cases.items() if _in_scope(record, comparison)]
    cannot_help = _why_more_cannot_help(runner, candidate, comparison, keys, stored)
    if cannot_help:
        outcome = judge_comparison(runner, plan, candidate, comparison, stored)
        return JudgedComparison(_noted(outcome, cannot_help) if outcome.verdict == "inconclusive" else outcome)
    models = (baseline, candidate)
    first = min((len(runner.sessions[model].cases[key].generations) for model in models for key in keys
                 if key in runner.sessions[model].cases), default=1)
    looks = planned_looks(first, settings.max_repeats)
    outcome = judge_comparison(runner, plan, candidate, comparison, stored, looks)
    repeats, extended = first, False
    while outcome.verdict == "inconclusive" and not outcome.busy and repeats < settings.max_repeats:
        repeats = min(repeats * 2, settings.max_repeats)
        for key in keys:
            runner.add_repeats(models, key, repeats)
        extended = True
        outcome = judge_comparison(runner, plan, candidate, comparison, stored, looks)
    if outcome.verdict == "inconclusive":
        outcome = _noted(outcome, f"still inconclusive at {repeats} repeats (max_repeats {settings.max_repeats})")
    records = tuple(runner.sessions[model].cases[key] for model in models for key in keys if key in runner.sessions[model].cases)
    return JudgedComparison(outcome, records if extended else ())


def _why_more_cannot_help(
    runner: Runner, candidate: str, comparison: Comparison, keys: list[tuple[str, str]], stored: Sequence[RunRecord]
) -> str:
    if stored:
        return "more repeats cannot help: a stored baseline cannot run again, and what limits it is the spread between runs"
    specs = [runner.sessions[candidate].specs.get(key) for key in keys]
    if comparison.metric == ACCURACY and specs and all(spec is not None and not spec[1].temperature for spec in specs):
        return "more repeats cannot help: with greedy decoding (temperature 0) every repeat gives the same answer"
    return ""
