"""Budgets from ``thresholds.yaml``: schema, card/model/suite matching and evaluation.

A budget that is right for an RTX 3090 is wrong for an H100, so budgets are keyed by card and
model. The most specific match wins for each metric: exact card over glob, exact model over glob,
suite over model. Per-case budgets (a case's ``budgets:`` in a suite) are parsed here too, by the
suite loader, so both kinds share one schema and every error names the key's own line.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pytest_mathperf.compare import CompareSettings, Comparison, parse_comparisons, parse_settings
from pytest_mathperf.devices import matching_card_patterns
from pytest_mathperf.metrics import (
    ACCURACY,
    GENERATION_METRICS,
    METRICS,
    MODEL_METRICS,
    SHARE_METRICS,
    STATISTICS,
    format_value,
    statistic,
    unit_of,
    wilson_interval,
)
from pytest_mathperf.yamlfile import LocatedDict, SchemaError, check_keys, expect_mapping, load_yaml

#: What a model gets when nothing in the file judges it on this card: its budget item is skipped
#: (with the reason in the summary), fails, or is only recorded. ``unknown_card`` is the old name.
NoBudgetPolicy = Literal["skip", "fail", "record"]
NO_BUDGET_POLICIES: tuple[str, ...] = ("skip", "fail", "record")
Scope = Literal["model", "suite", "case", "load"]


@dataclass(frozen=True)
class Budget:
    """One bound on one metric (with a statistic where the metric has one value per generation)."""

    metric: str
    statistic: str | None
    minimum: float | None
    maximum: float | None
    scope: Scope
    suite: str | None  # the suite a suite/case/load budget is for
    case: str | None
    source: Path
    line: int
    card_pattern: str | None  # None for per-case budgets, which hold on any card
    model_pattern: str | None
    confidence: float | None = None  # judge the bound against an interval, which can be inconclusive

    @property
    def name(self) -> str:
        """The budget's name in node ids, JUnit and history, e.g. ``ttft_ms.p50``."""
        return f"{self.metric}.{self.statistic}" if self.statistic else self.metric

    @property
    def bound_text(self) -> str:
        return bound_text(self.metric, self.minimum, self.maximum)


BudgetStatus = Literal["passed", "failed", "inconclusive", "cannot_judge"]


@dataclass(frozen=True)
class BudgetOutcome:
    """A budget compared with what was measured; ``measured`` is None when nothing was."""

    budget: Budget
    measured: float | None
    samples: int
    status: BudgetStatus
    detail: str = ""  # e.g. the Wilson interval of an accuracy
    reason: str = ""  # why it cannot judge, or is inconclusive
    notes: tuple[str, ...] = ()  # more lines for the failure text (a load profile's failures)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def measured_text(self) -> str:
        if self.measured is None:
            return "nothing measured"
        return f"{format_value(self.budget.metric, self.measured)} {self.detail}".strip()

    def with_notes(self, notes: Sequence[str]) -> BudgetOutcome:
        return replace(self, notes=tuple(notes))



def bound_text(metric: str, minimum: float | None, maximum: float | None) -> str:
    """``≥ 95 tok/s``, ``≤ 350 ms``, ``≥ 90.0%``: the one spelling of a bound in every output."""
    # a bound is shown as the user wrote it (1, not 1.00); a share as a percentage
    def shown(value: float) -> str:
        if metric in SHARE_METRICS:
            return format_value(metric, value, unit=False)
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"

    parts = [f"{sign} {shown(value)}" for sign, value in (("≥", minimum), ("≤", maximum)) if value is not None]
    unit = unit_of(metric)
    return " and ".join(parts) + (f" {unit}" if unit else "")


@dataclass(frozen=True)
class Thresholds:
    """A parsed thresholds file: the card entries with their budgets, in file order."""

    path: Path
    no_budget: NoBudgetPolicy
    cards: Mapping[str, Mapping[str, "ModelEntry"]]  # card pattern → model pattern → entry
    policy_key: str = "no_budget"  # as the file spells it (``unknown_card`` in older files)
    compare_settings: CompareSettings = CompareSettings()

    def card_entries(self, card: str) -> list[str]:
        """Card patterns matching ``card``, most specific first; a MIG slice only under keys that say MIG."""
        return matching_card_patterns(card, self.cards)

    def entries_for(self, card: str, model: str) -> list[ModelEntry]:
        """The entries matching ``model`` on ``card``, most specific first."""
        return [
            self.cards[card_pattern][model_pattern]
            for card_pattern in self.card_entries(card)
            for model_pattern in _ranked(model, self.cards[card_pattern])
        ]

    def budgets_for(self, card: str, model: str, suites: Iterable[str]) -> list[Budget] | None:
        """Budgets that apply to ``model`` on ``card`` for the given suites; None when no entry matches."""
        candidates = self.entries_for(card, model)
        if not candidates:
            return None
        chosen: dict[tuple[str | None, str], Budget] = {}
        suites = list(suites)
        for entry in candidates:  # most specific first: the first to define a key keeps it
            for budget in entry.budgets:
                if budget.scope == "suite" and budget.suite not in suites:
                    continue
                chosen.setdefault((budget.suite if budget.scope != "model" else None, budget.name), budget)
        return list(chosen.values())

    def comparisons_for(self, card: str, model: str, suites: Iterable[str]) -> list[Comparison]:
        """The candidate's margins against its baseline, most specific entry first for each metric."""
        chosen: dict[tuple[str | None, str], Comparison] = {}
        suites = list(suites)
        for card_pattern in self.card_entries(card):
            for model_pattern in _ranked(model, self.cards[card_pattern]):
                for comparison in self.cards[card_pattern][model_pattern].comparisons:
                    if comparison.scope == "suite" and comparison.suite not in suites:
                        continue
                    chosen.setdefault((comparison.suite, comparison.name), comparison)
        return list(chosen.values())

    def why_no_budget(self, card: str, model: str, suites: Iterable[str], *, has_baseline: bool = False) -> str:
        """Why nothing judges ``model`` on ``card``, with the entries it most likely meant."""
        where = f"in {self.path} ({self.policy_key}: {self.no_budget})"
        card_patterns = self.card_entries(card)
        if not card_patterns:
            hint = _did_you_mean(card, self.cards, lambda pattern: f"card {pattern!r}")
            return f"no entry for card {card!r} {where}{hint}; `mathperf card` prints this card's name"
        models = {pattern: entry for card_pattern in card_patterns for pattern, entry in self.cards[card_pattern].items()}
        if not any(_ranked(model, models)):
            hint = _did_you_mean(model, models, lambda pattern: f"model {pattern!r} (line {models[pattern].line})")
            return f"no entry for model {model!r} under card {card!r} {where}{hint}"
        compared = [models[pattern] for pattern in _ranked(model, models) if models[pattern].comparisons]
        if compared and not has_baseline:  # only a comparison judges it, and this run compares it with nothing
            return (
                f"the entry for {model!r} on {card!r} {where} judges it by its compare: margins (line "
                f"{compared[0].line}), and this run has no baseline for it: the first --mathperf-model is the "
                f"baseline; run the baseline first (--mathperf-model BASELINE --mathperf-model {model}) "
                "or compare with a blessed run (--mathperf-baseline blessed)"
            )
        rules = [*(b for entry in models.values() for b in entry.budgets), *(c for entry in models.values() for c in entry.comparisons)]
        missing = sorted({rule.suite for rule in rules if rule.suite} - set(suites))
        if not missing:
            return f"the entry for {model!r} on {card!r} {where} has no budget"
        return (
            f"the entry for {model!r} on {card!r} {where} has budgets only for suites this run does not "
            f"have: {', '.join(missing)}"
        )


@dataclass(frozen=True)
class ModelEntry:
    budgets: tuple[Budget, ...]
    line: int = 0
    comparisons: tuple[Comparison, ...] = ()


def _did_you_mean(name: str, patterns: Iterable[str], describe: Any) -> str:
    """`` — did you mean …?`` for patterns a small edit away (a typo, a missing ``NVIDIA `` prefix)."""
    patterns = list(patterns)
    close = difflib.get_close_matches(name, patterns, n=2, cutoff=0.75)
    close += [p for p in patterns if p not in close and (p.endswith(name) or name.endswith(p)) and len(p) > 3]
    return f" — did you mean {' or '.join(describe(pattern) for pattern in close)}?" if close else ""


def near_miss_entries(thresholds: Thresholds) -> list[tuple[str, str, ModelEntry]]:
    """(card, pattern, entry) for model patterns a small edit away from another under the same card.

    Two entries that differ by a typo (``mathperf-tnyi`` beside ``mathperf-tiny``) almost always
    mean that one of them judges nothing; ``mathperf lint`` reports each.
    """
    found = []
    for card, models in thresholds.cards.items():
        for pattern, entry in models.items():
            others = [other for other in models if other != pattern]
            if difflib.get_close_matches(pattern, others, n=1, cutoff=0.8):
                found.append((card, pattern, entry))
    return found


def load_thresholds(path: Path) -> Thresholds:
    """Parse and validate a thresholds file; every schema error names the key path and line."""
    document = load_yaml(path)
    top = expect_mapping(path, LocatedDict() if document is None else document, "a thresholds file", 1)
    check_keys(path, top, ("version", "no_budget", "unknown_card", "compare_defaults", "cards"), "the thresholds file")
    if top.get("version", 1) != 1:
        raise SchemaError(path, top.line_of("version"), f"version: {top['version']!r} is not supported (use 1)")
    if "no_budget" in top and "unknown_card" in top:
        raise SchemaError(path, top.line_of("unknown_card"), "unknown_card: the old name of no_budget; give only no_budget")
    policy_key = "unknown_card" if "unknown_card" in top else "no_budget"
    policy = top.get(policy_key, "skip")
    if policy not in NO_BUDGET_POLICIES:
        raise SchemaError(path, top.line_of(policy_key), f"{policy_key}: must be one of {', '.join(NO_BUDGET_POLICIES)}")
    cards: dict[str, dict[str, ModelEntry]] = {}
    raw_cards = expect_mapping(path, top.get("cards", LocatedDict()), "cards", top.line_of("cards"))
    for card_pattern, card_entry in raw_cards.items():
        where = f"cards.{card_pattern!r}"
        card_entry = expect_mapping(path, card_entry, where, raw_cards.line_of(card_pattern))
        check_keys(path, card_entry, ("models",), where)
        models = expect_mapping(path, card_entry.get("models"), f"{where}.models", card_entry.line)
        cards[str(card_pattern)] = {
            str(model_pattern): _model_entry(path, raw, f"{where}.models.{model_pattern!r}", models.line_of(model_pattern), str(card_pattern), str(model_pattern))
            for model_pattern, raw in models.items()
        }
    settings = parse_settings(path, top["compare_defaults"], top.line_of("compare_defaults")) if "compare_defaults" in top else CompareSettings()
    return Thresholds(path=path, no_budget=policy, cards=cards, policy_key=policy_key, compare_settings=settings)


def _model_entry(path: Path, raw: Any, where: str, line: int, card: str, model: str) -> ModelEntry:
    entry = expect_mapping(path, raw, where, line)
    compare = entry.pop("compare", None)
    comparisons = () if compare is None else parse_comparisons(path, expect_mapping(path, compare, f"{where}.compare", entry.line_of("compare")), f"{where}.compare")
    return ModelEntry(_entry_budgets(path, entry, where, card, model), line, comparisons)


def case_budgets(path: Path, budgets: LocatedDict, suite: str, case: str) -> tuple[Budget, ...]:
    """Budgets a case sets for itself (``budgets:`` in a suite); per-generation metrics only."""
    found: list[Budget] = []
    for metric, spec in budgets.items():
        if metric not in GENERATION_METRICS:
            raise SchemaError(
                path,
                budgets.line_of(metric),
                f"budgets.{metric}: per-case budgets take per-generation metrics: {', '.join(GENERATION_METRICS)}",
            )
        found.extend(_metric_budgets(path, budgets, metric, spec, f"budgets.{metric}", "case", suite, case, None, None))
    return tuple(found)


def _entry_budgets(path: Path, entry: LocatedDict, where: str, card: str, model: str) -> tuple[Budget, ...]:
    budgets: list[Budget] = []
    for key, spec in entry.items():
        if key == "suites":
            suites = expect_mapping(path, spec, f"{where}.suites", entry.line_of(key))
            for suite_name, suite_spec in suites.items():
                suite_where = f"{where}.suites.{suite_name}"
                suite_spec = expect_mapping(path, suite_spec, suite_where, suites.line_of(suite_name))
                for metric, metric_spec in suite_spec.items():
                    if metric in MODEL_METRICS:
                        raise SchemaError(
                            path,
                            suite_spec.line_of(metric),
                            f"{suite_where}.{metric}: {metric} is measured per model, not per suite; "
                            "move it up to the model",
                        )
                    budgets.extend(
                        _metric_budgets(
                            path, suite_spec, metric, metric_spec, f"{suite_where}.{metric}",
                            "suite", str(suite_name), None, card, model,
                        )
                    )
        elif key == "load":
            load = expect_mapping(path, spec, f"{where}.load", entry.line_of(key))
            for metric, metric_spec in load.items():
                budgets.extend(
                    _metric_budgets(
                        path, load, f"load.{metric}", metric_spec, f"{where}.load.{metric}",
                        "load", None, None, card, model,
                    )
                )
        else:
            scope: Scope = "load" if str(key).startswith("load.") else "model"
            budgets.extend(
                _metric_budgets(path, entry, str(key), spec, f"{where}.{key}", scope, None, None, card, model)
            )
    return tuple(budgets)


def _metric_budgets(
    path: Path,
    parent: LocatedDict,
    metric: str,
    spec: Any,
    where: str,
    scope: Scope,
    suite: str | None,
    case: str | None,
    card: str | None,
    model: str | None,
) -> list[Budget]:
    key = metric.removeprefix("load.") if scope == "load" and metric not in parent else metric
    line = parent.line_of(key)
    if metric not in METRICS:
        raise SchemaError(path, line, f"{where}: unknown metric {metric!r}; known: {', '.join(METRICS)}")
    spec = expect_mapping(path, spec, where, line)
    sampled = METRICS[metric].sampled

    def bound(bounds: LocatedDict, bound_where: str, stat: str | None) -> Budget:
        check_keys(path, bounds, ("min", "max", "confidence"), bound_where)
        if "min" not in bounds and "max" not in bounds:
            raise SchemaError(path, bounds.line or line, f"{bound_where}: give min, max or both")
        values = []
        for side in ("min", "max"):
            value = bounds.get(side)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SchemaError(path, bounds.line_of(side), f"{bound_where}.{side}: must be a number, got {value!r}")
            if value is not None and not (math.isfinite(value) and value >= 0):  # every metric is ≥ 0: it would never pass
                raise SchemaError(path, bounds.line_of(side), f"{bound_where}.{side}: must be a number ≥ 0, got {value!r}")
            values.append(None if value is None else float(value))
        if values[0] is not None and values[1] is not None and values[0] > values[1]:
            raise SchemaError(path, bounds.line_of("min"), f"{bound_where}: min {values[0]:g} is above max {values[1]:g}; no value could pass")
        if metric in SHARE_METRICS and any(v is not None and not 0 <= v <= 1 for v in values):
            raise SchemaError(path, bounds.line or line, f"{bound_where}: a share is between 0 and 1 (0.9 means 90 %)")
        confidence = bounds.get("confidence")
        if confidence is not None:
            if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
                raise SchemaError(path, bounds.line_of("confidence"), f"{bound_where}.confidence: a number in [0.5, 1), e.g. 0.95")
            if metric != ACCURACY and stat not in CONFIDENCE_STATISTICS:
                raise SchemaError(
                    path, bounds.line_of("confidence"),
                    f"{bound_where}.confidence: needs a percentile or the mean of a per-generation metric, or accuracy",
                )
        return Budget(metric, stat, values[0], values[1], scope, suite, case, path, line, card, model,
                      None if confidence is None else float(confidence))

    if sampled:
        budgets = []
        for stat, bounds in spec.items():
            if stat not in STATISTICS:
                raise SchemaError(
                    path,
                    spec.line_of(stat),
                    f"{where}.{stat}: unknown statistic; use one of {', '.join(STATISTICS)} "
                    f"(e.g. {metric}: {{p50: {{max: 350}}}})",
                )
            if not isinstance(bounds, LocatedDict):
                raise SchemaError(
                    path,
                    spec.line_of(stat),
                    f"{where}.{stat}: {metric} has one value per generation, so name the statistic first: "
                    f"{metric}: {{p50: {{max: 350}}}}",
                )
            budgets.append(bound(bounds, f"{where}.{stat}", str(stat)))
        return budgets
    return [bound(spec, where, None)]


def evaluate(budget: Budget, samples: Sequence[float]) -> BudgetOutcome:
    """Compare the budget's statistic over ``samples`` with its bounds.

    Accuracy samples are 1.0/0.0 per case, so their mean is the share and the Wilson interval is
    reported beside it; model metrics arrive as a single sample. With ``confidence:`` the bound is
    judged against evidence and can be inconclusive: accuracy by its Wilson interval, a mean by
    its t interval, a percentile by the binomial count of samples beyond the bound (MLPerf's
    early-stopping rule: "p95 ≤ 500" holds when significantly fewer than 5 % exceed 500).
    """
    values = [value for value in samples if not math.isnan(value)]
    if not values:
        return BudgetOutcome(budget, None, 0, "failed")
    detail = ""
    if budget.metric == ACCURACY:
        interval = wilson_interval(int(sum(values)), len(values), budget.confidence or 0.95)
        measured = interval.value
        detail = f"({interval.successes}/{interval.total}, {interval.confidence:.0%} CI {interval.low:.0%}–{interval.high:.0%})"
    elif budget.statistic:
        measured = statistic(values, budget.statistic)
    else:
        measured = _least_within(values, budget)
    passed = (budget.minimum is None or measured >= budget.minimum) and (
        budget.maximum is None or measured <= budget.maximum
    )
    if budget.confidence is None:
        return BudgetOutcome(budget, measured, len(values), "passed" if passed else "failed", detail)
    status, evidence = _with_confidence(budget, values)
    return BudgetOutcome(budget, measured, len(values), status, f"{detail} {evidence}".strip(),
                         reason="" if status != "inconclusive" else f"not enough evidence at {budget.confidence:.0%}: {evidence}")


def _least_within(values: list[float], budget: Budget) -> float:
    """The value of several that holds least to the bounds: one per load profile, each must hold."""
    low, high = min(values), max(values)
    if budget.minimum is not None and low < budget.minimum:
        return low
    if budget.maximum is not None and high > budget.maximum:
        return high
    return low if budget.minimum is not None else high


#: Statistics a ``confidence:`` can be judged for (a min or max of samples has no useful interval).
CONFIDENCE_STATISTICS = ("p50", "p90", "p95", "p99", "mean")


def _with_confidence(budget: Budget, values: list[float]) -> tuple[BudgetStatus, str]:
    """passed / failed only on evidence at the budget's confidence, else inconclusive."""
    from scipy import stats

    confidence = budget.confidence or 0.95
    alpha = 1 - confidence
    if budget.metric == ACCURACY or budget.statistic == "mean":
        if budget.metric == ACCURACY:
            interval = wilson_interval(int(sum(values)), len(values), confidence)
            low, high = interval.low, interval.high
        elif len(values) < 2:
            return "inconclusive", "one sample has no interval"
        else:
            ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
            low, high = float(ci.low), float(ci.high)
        ok = (budget.minimum is None or low >= budget.minimum) and (budget.maximum is None or high <= budget.maximum)
        bad = (budget.minimum is not None and high < budget.minimum) or (budget.maximum is not None and low > budget.maximum)
        text = f"{confidence:.0%} interval {format_value(budget.metric, low)} – {format_value(budget.metric, high)}"
        return ("passed" if ok else "failed" if bad else "inconclusive"), text
    share = float(budget.statistic[1:]) / 100  # type: ignore[index]
    verdicts: list[str] = []
    texts: list[str] = []
    for bound, beyond, allowed in (
        (budget.maximum, sum(value > (budget.maximum or 0) for value in values), 1 - share),
        (budget.minimum, sum(value < (budget.minimum or 0) for value in values), share),
    ):
        if bound is None:
            continue
        holds = stats.binomtest(beyond, len(values), allowed, alternative="less").pvalue < alpha
        broken = stats.binomtest(beyond, len(values), allowed, alternative="greater").pvalue < alpha
        verdicts.append("passed" if holds else "failed" if broken else "inconclusive")
        texts.append(f"{beyond} of {len(values)} samples beyond {format_value(budget.metric, bound)} (at most {allowed:.0%} allowed)")
    status = "failed" if "failed" in verdicts else "inconclusive" if "inconclusive" in verdicts else "passed"
    return status, "; ".join(texts)  # type: ignore[return-value]


def _ranked(name: str, patterns: Iterable[str]) -> list[str]:
    """Patterns matching ``name``: the exact one first, then globs from the longest literal part."""
    exact = [pattern for pattern in patterns if pattern == name]
    globs = [
        pattern
        for pattern in patterns
        if pattern != name and any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(name, pattern)
    ]
    globs.sort(key=lambda pattern: -len(pattern.replace("*", "").replace("?", "")))
    return exact + globs
