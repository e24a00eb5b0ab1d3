"""Candidate against baseline: did this model upgrade make things worse, with evidence?

A ``compare:`` block in a thresholds.yaml model entry sets margins against the baseline
(``ttft_ms: {p50: {max_ratio: 1.10}}``, ``accuracy: {max_drop: 0.02}``). Each comparison gets one
of three verdicts from a confidence interval: **regression** (the whole interval lies beyond the
margin), **within margin** (the whole interval lies inside it) or **inconclusive** (it straddles
the margin: not enough evidence either way).

- Timings: the ratio candidate/baseline of the named statistic, with a bootstrap percentile
  interval (scipy.stats.bootstrap). Where both sides ran the same cases the bootstrap resamples
  cases, each with all its repeats (a cluster bootstrap: repeats of one prompt are not
  independent evidence, so more repeats cannot narrow the interval below what the cases allow);
  without common cases the two samples are resampled independently. The p-value is a one-sided
  Wilcoxon signed-rank test of the cases' mean log ratios against the margin (Mann-Whitney U
  without pairs). Variation the run itself cannot show (between runs, against a stored
  baseline; between turns, where models were not interleaved) is a ``RunSpread`` added to the
  interval on the log scale.
- Accuracy: paired on the cases both models ran. The drop (baseline share − candidate share)
  gets a paired bootstrap interval over cases; the p-value is the exact McNemar test on the
  discordant cases (scipy.stats.binomtest).
- Memory and other once-per-model values: one value each, so a plain ratio against the margin,
  never inconclusive.

The intervals of one candidate are Bonferroni-corrected over its comparisons (each at confidence
1 − α/k), so the chance of any false "regression" among them stays at most α.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_mathperf.metrics import ACCURACY, METRICS

#: Statistics a ratio can be compared for with an honest interval.
COMPARABLE_STATISTICS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean")
from pytest_mathperf.yamlfile import LocatedDict, SchemaError, check_keys, expect_mapping

InconclusivePolicy = Literal["pass", "fail", "more"]
INCONCLUSIVE_POLICIES: tuple[str, ...] = ("pass", "fail", "more")
Verdict = Literal["regression", "within_margin", "inconclusive", "cannot_judge"]
BOOTSTRAP_RESAMPLES = 4999
BOOTSTRAP_SEED = 20261201  # fixed, so the same samples always give the same interval


@dataclass(frozen=True)
class CompareSettings:
    """File-wide ``compare_defaults:``."""

    confidence: float = 0.95
    inconclusive: InconclusivePolicy = "pass"
    max_repeats: int | None = None


@dataclass(frozen=True)
class Comparison:
    """One margin of a candidate against the baseline."""

    metric: str
    statistic: str | None
    max_ratio: float | None
    min_ratio: float | None
    max_drop: float | None
    scope: Literal["model", "suite"]
    suite: str | None
    source: Path
    line: int

    @property
    def name(self) -> str:
        return f"{self.metric}.{self.statistic}" if self.statistic else self.metric

    @property
    def margin_text(self) -> str:
        if self.max_drop is not None:
            return f"drop ≤ {self.max_drop:.1%}"
        if self.max_ratio is not None:
            return f"ratio ≤ {self.max_ratio:g}"
        return f"ratio ≥ {self.min_ratio:g}"


def parse_settings(path: Path, raw: Any, line: int) -> CompareSettings:
    block = expect_mapping(path, raw, "compare_defaults", line)
    check_keys(path, block, ("confidence", "inconclusive", "max_repeats"), "compare_defaults")
    confidence = block.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
        raise SchemaError(path, block.line_of("confidence"), "compare_defaults.confidence: a number in [0.5, 1), e.g. 0.95")
    policy = block.get("inconclusive", "pass")
    if policy not in INCONCLUSIVE_POLICIES:
        raise SchemaError(path, block.line_of("inconclusive"), f"compare_defaults.inconclusive: one of {', '.join(INCONCLUSIVE_POLICIES)}")
    repeats = block.get("max_repeats")
    if repeats is not None and (isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1):
        raise SchemaError(path, block.line_of("max_repeats"), "compare_defaults.max_repeats: a whole number ≥ 1")
    if policy == "more" and repeats is None:
        raise SchemaError(path, block.line_of("inconclusive"), "compare_defaults.inconclusive: more needs max_repeats: N")
    return CompareSettings(float(confidence), policy, repeats)


def parse_comparisons(path: Path, block: LocatedDict, where: str) -> tuple[Comparison, ...]:
    """A model entry's ``compare:`` block; every error names the key path and line."""
    found: list[Comparison] = []
    for key, spec in block.items():
        if key == "suites":
            suites = expect_mapping(path, spec, f"{where}.suites", block.line_of(key))
            for suite, suite_spec in suites.items():
                suite_block = expect_mapping(path, suite_spec, f"{where}.suites.{suite}", suites.line_of(suite))
                for metric, metric_spec in suite_block.items():
                    found.extend(_metric(path, suite_block, str(metric), metric_spec, f"{where}.suites.{suite}.{metric}", str(suite)))
        else:
            found.extend(_metric(path, block, str(key), spec, f"{where}.{key}", None))
    return tuple(found)


def _metric(path: Path, parent: LocatedDict, metric: str, spec: Any, where: str, suite: str | None) -> list[Comparison]:
    line = parent.line_of(metric)
    if metric not in METRICS or METRICS[metric].kind == "load":
        known = [name for name, found in METRICS.items() if found.kind != "load"]
        raise SchemaError(path, line, f"{where}: cannot compare {metric!r}; comparable: {', '.join(known)}")
    spec = expect_mapping(path, spec, where, line)
    if suite is not None and METRICS[metric].kind == "model":
        raise SchemaError(path, line, f"{where}: {metric} is measured per model, not per suite; move it up")
    scope: Literal["model", "suite"] = "suite" if suite else "model"
    if metric == ACCURACY:
        check_keys(path, spec, ("max_drop",), where)
        drop = _number(path, spec, "max_drop", where, required=True)
        if drop is None or not 0 <= drop < 1:
            raise SchemaError(path, spec.line_of("max_drop"), f"{where}.max_drop: a share in [0, 1), e.g. 0.02 for two points")
        return [Comparison(metric, None, None, None, drop, scope, suite, path, line)]
    if METRICS[metric].sampled:
        comparisons = []
        for statistic, bounds in spec.items():
            if statistic not in COMPARABLE_STATISTICS:
                # a bootstrap of the min or max cannot reach beyond the sample's own extreme: no honest interval
                raise SchemaError(
                    path, spec.line_of(statistic), f"{where}.{statistic}: compare one of {', '.join(COMPARABLE_STATISTICS)}"
                )
            bounds = expect_mapping(path, bounds, f"{where}.{statistic}", spec.line_of(statistic))
            comparisons.append(_ratio(path, bounds, metric, str(statistic), f"{where}.{statistic}", scope, suite))
        return comparisons
    return [_ratio(path, spec, metric, None, where, scope, suite)]


def _ratio(path: Path, bounds: LocatedDict, metric: str, statistic: str | None, where: str, scope: Any, suite: str | None) -> Comparison:
    check_keys(path, bounds, ("max_ratio", "min_ratio"), where)
    high, low = _number(path, bounds, "max_ratio", where), _number(path, bounds, "min_ratio", where)
    if (high is None) == (low is None):
        raise SchemaError(path, bounds.line, f"{where}: give max_ratio (lower is better) or min_ratio (higher is better)")
    # a margin on the wrong side would call a better candidate a regression and pass a worse one
    given, margin = ("max_ratio", high) if high is not None else ("min_ratio", low)
    wanted = "min_ratio" if METRICS[metric].higher_is_better else "max_ratio"
    if given != wanted:
        suggestion = f" (e.g. {wanted}: {1 / margin:.3g})" if margin else ""
        raise SchemaError(
            path,
            bounds.line_of(given),
            f"{where}.{given}: {metric} is better {METRICS[metric].direction}, so its margin is a {wanted}{suggestion}",
        )
    return Comparison(metric, statistic, high, low, None, scope, suite, path, bounds.line)


def _number(path: Path, spec: LocatedDict, key: str, where: str, required: bool = False) -> float | None:
    value = spec.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SchemaError(path, spec.line_of(key), f"{where}.{key}: must be a number ≥ 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ComparisonOutcome:
    """A comparison's verdict with its evidence."""

    comparison: Comparison
    verdict: Verdict
    estimate: float | None = None  # the ratio, or the accuracy drop
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    samples: int = 0
    paired: bool = False
    confidence: float = 0.95
    reason: str = ""
    candidate_value: float | None = None
    baseline_value: float | None = None
    busy: bool = False  # a timing taken on a busy host: inconclusive whatever the policy, never a failure


def _verdict(low: float, high: float, *, upper: float | None = None, lower: float | None = None) -> Verdict:
    """Regression when the interval lies wholly beyond the margin, within when wholly inside."""
    if upper is not None:
        return "regression" if low > upper else "within_margin" if high <= upper else "inconclusive"
    assert lower is not None
    return "regression" if high < lower else "within_margin" if low >= lower else "inconclusive"


@dataclass(frozen=True)
class RunSpread:
    """Variation that resampling this run's cases cannot see: between runs (a stored baseline)
    or between the models' turns (models not interleaved), as a standard deviation of the log ratio."""

    log_sd: float
    degrees_of_freedom: int | None  # of log_sd's estimate; None for a fixed figure
    source: str  # what it was measured from, as the verdict shows it


def spread_between_runs(levels: Sequence[float], source: str) -> RunSpread | None:
    """The spread of one new run around the pool of ``levels`` (each run's log statistic): their
    standard deviation times √(1 + 1/runs), with runs − 1 degrees of freedom; None under two runs."""
    import numpy
    from scipy import stats

    if len(levels) < 2:
        return None
    log_sd = float(stats.tstd(numpy.array(levels, dtype=float))) * math.sqrt(1 + 1 / len(levels))
    return RunSpread(log_sd, len(levels) - 1, source)


def compare_samples(
    comparison: Comparison,
    candidate: Mapping[tuple[str, str, int], float],
    baseline: Mapping[tuple[str, str, int], float],
    confidence: float,
    spread: RunSpread | None = None,
) -> ComparisonOutcome:
    """Ratio of a per-generation statistic. Where both sides ran the same cases, the interval is a
    cluster bootstrap (cases resampled with all their repeats: repeats of one case share its
    prompt, so they are not independent evidence); otherwise the two samples are resampled apart."""
    import numpy

    from pytest_mathperf.metrics import statistic as apply

    cand_by_case, base_by_case = _by_case(candidate), _by_case(baseline)
    common = sorted(set(cand_by_case) & set(base_by_case))
    paired = len(common) >= 2
    cand_cases = [cand_by_case[key] for key in common] if paired else list(cand_by_case.values())
    base_cases = [base_by_case[key] for key in common] if paired else list(base_by_case.values())
    cand = numpy.array([value for values in cand_cases for value in values], dtype=float)
    base = numpy.array([value for values in base_cases for value in values], dtype=float)
    if len(cand) < 2 or len(base) < 2:
        return ComparisonOutcome(comparison, "cannot_judge", samples=min(len(cand), len(base)), reason="fewer than 2 samples on a side")
    if (cand <= 0).any() or (base <= 0).any():
        return ComparisonOutcome(comparison, "cannot_judge", samples=len(cand), reason="a ratio needs positive values")
    name = comparison.statistic or "mean"
    estimate = apply(list(cand), name) / apply(list(base), name)
    if numpy.allclose(cand, cand[0]) and numpy.allclose(base, base[0]):
        low = high = estimate  # no spread: the bootstrap has nothing to resample
    elif paired:
        low, high = _cluster_interval(cand_cases, base_cases, name, confidence)
    else:
        low, high = _independent_interval(cand, base, name, confidence)
    margin = comparison.max_ratio if comparison.max_ratio is not None else comparison.min_ratio
    assert margin is not None
    reason = ""
    if spread is not None:
        low, high, p_value = _widened(estimate, low, high, spread, confidence, margin, comparison.max_ratio is not None)
        reason = f"the interval carries the spread {spread.source} (log sd {spread.log_sd:.3f})"
    else:
        p_value = _p_value(cand_cases, base_cases, cand, base, margin, comparison.max_ratio is not None, paired)
    verdict = _verdict(low, high, upper=comparison.max_ratio, lower=comparison.min_ratio)
    return ComparisonOutcome(
        comparison, verdict, estimate, low, high, p_value, len(cand), paired, confidence, reason=reason,
        candidate_value=apply(list(cand), name), baseline_value=apply(list(base), name),
    )


def _by_case(samples: Mapping[tuple[str, str, int], float]) -> dict[tuple[str, str], list[float]]:
    cases: dict[tuple[str, str], list[float]] = {}
    for (suite, case, _repeat), value in sorted(samples.items()):
        cases.setdefault((suite, case), []).append(value)
    return cases


def _padded(cases: list[list[float]]) -> Any:
    """Cases as rows, repeats as columns, NaN where a case has fewer repeats."""
    import numpy

    matrix = numpy.full((len(cases), max(len(values) for values in cases)), numpy.nan)
    for row, values in enumerate(cases):
        matrix[row, : len(values)] = values
    return matrix


def _cluster_interval(cand_cases: list[list[float]], base_cases: list[list[float]], name: str, confidence: float) -> tuple[float, float]:
    """Percentile interval of the ratio with the cases resampled (an index resample), each with all its repeats."""
    import numpy
    from scipy import stats

    cand, base = _padded(cand_cases), _padded(base_cases)

    def ratio(indices: Any, axis: int = -1) -> Any:
        batch = indices.shape[:-1]
        chosen_cand = cand[indices].reshape(*batch, -1)
        chosen_base = base[indices].reshape(*batch, -1)
        return _nan_statistic(chosen_cand, name) / _nan_statistic(chosen_base, name)

    interval = stats.bootstrap(
        (numpy.arange(len(cand_cases)),), ratio, vectorized=True, confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=numpy.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    return float(interval.low), float(interval.high)


def _independent_interval(cand: Any, base: Any, name: str, confidence: float) -> tuple[float, float]:
    import numpy
    from scipy import stats

    def ratio(c: Any, b: Any, axis: int = -1) -> Any:
        return _vector_statistic(c, name, axis) / _vector_statistic(b, name, axis)

    interval = stats.bootstrap(
        (cand, base), ratio, vectorized=True, confidence_level=confidence,
        n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", rng=numpy.random.default_rng(BOOTSTRAP_SEED),
    ).confidence_interval
    return float(interval.low), float(interval.high)


def _nan_statistic(values: Any, name: str) -> Any:
    import numpy

    if not numpy.isnan(values).any():  # every case with as many repeats: the plain functions, 30x faster
        return _vector_statistic(values, name, -1)
    if name == "mean":
        return numpy.nanmean(values, axis=-1)
    return numpy.nanpercentile(values, float(name[1:]), axis=-1)


def _widened(
    estimate: float, low: float, high: float, spread: RunSpread, confidence: float, margin: float, lower_is_better: bool
) -> tuple[float, float, float]:
    """The interval with the run-level spread added in quadrature on the log scale, each side;
    a t quantile where the spread was estimated from few runs. The p-value follows the same scale."""
    from scipy import stats

    tail = (1 - confidence) / 2
    quantile = stats.norm.isf(tail) if spread.degrees_of_freedom is None else stats.t.isf(tail, spread.degrees_of_freedom)
    z_case = stats.norm.isf(tail)
    centre = math.log(estimate)
    case_low, case_high = (centre - math.log(low)) / z_case, (math.log(high) - centre) / z_case
    widest = math.hypot(max(case_low, case_high), spread.log_sd)
    low = math.exp(centre - quantile * math.hypot(case_low, spread.log_sd))
    high = math.exp(centre + quantile * math.hypot(case_high, spread.log_sd))
    score = (centre - math.log(margin)) / widest if widest > 0 else math.copysign(math.inf, centre - math.log(margin))
    if not lower_is_better:
        score = -score  # "worse than the margin" is below it
    p_value = stats.norm.sf(score) if spread.degrees_of_freedom is None else stats.t.sf(score, spread.degrees_of_freedom)
    return low, high, float(p_value)


def _p_value(
    cand_cases: list[list[float]], base_cases: list[list[float]], cand: Any, base: Any, margin: float,
    lower_is_better: bool, paired: bool,
) -> float:
    """One-sided test that the candidate is worse than the margin: Wilcoxon signed-rank over the
    cases' mean log ratios (the case is the independent unit), Mann-Whitney U without pairs."""
    import numpy
    from scipy import stats

    alternative = "greater" if lower_is_better else "less"  # "worse than the margin"
    if not paired:
        return float(stats.mannwhitneyu(numpy.log(cand) - numpy.log(margin), numpy.log(base), alternative=alternative).pvalue)
    differences = numpy.array([
        numpy.mean(numpy.log(c)) - numpy.log(margin) - numpy.mean(numpy.log(b)) for c, b in zip(cand_cases, base_cases)
    ])
    if numpy.allclose(differences, 0):
        return 1.0
    # scipy's "auto" meets ties in 13 pairs or fewer with a permutation test that evaluates the
    # statistic once per sign pattern (2^12 calls, 0.8 s a comparison); its exact distribution
    # gives a conservative p-value with ties at once (the verdict rests on the interval).
    method = "exact" if differences.size <= 50 else "asymptotic"
    return float(stats.wilcoxon(differences, alternative=alternative, method=method).pvalue)


def _vector_statistic(values: Any, name: str, axis: int) -> Any:
    import numpy

    if name == "mean":
        return numpy.mean(values, axis=axis)
    if name == "min":
        return numpy.min(values, axis=axis)
    if name == "max":
        return numpy.max(values, axis=axis)
    return numpy.percentile(values, float(name[1:]), axis=axis)


def compare_accuracy(
    comparison: Comparison, candidate: Mapping[tuple[str, str], bool], baseline: Mapping[tuple[str, str], bool], confidence: float
) -> ComparisonOutcome:
    """Accuracy drop on the cases both models ran: paired bootstrap interval, exact McNemar p-value."""
    import numpy
    from scipy import stats

    keys = sorted(set(candidate) & set(baseline))
    if len(keys) < 2:
        return ComparisonOutcome(comparison, "cannot_judge", samples=len(keys), reason="fewer than 2 cases ran on both models")
    cand = numpy.array([float(candidate[key]) for key in keys])
    base = numpy.array([float(baseline[key]) for key in keys])
    drop = float(base.mean() - cand.mean())
    if numpy.array_equal(cand, base):
        low = high = drop  # every case agrees: no discordant case to resample
    else:
        interval = stats.bootstrap(
            (base, cand), lambda b, c, axis=-1: numpy.mean(b, axis=axis) - numpy.mean(c, axis=axis),
            paired=True, vectorized=True, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile", rng=numpy.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    lost = int(((base == 1) & (cand == 0)).sum())  # baseline right, candidate wrong
    gained = int(((base == 0) & (cand == 1)).sum())
    p_value = float(stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue) if lost + gained else 1.0
    assert comparison.max_drop is not None
    verdict = _verdict(low, high, upper=comparison.max_drop)
    return ComparisonOutcome(
        comparison, verdict, drop, low, high, p_value, len(keys), True, confidence,
        candidate_value=float(cand.mean()), baseline_value=float(base.mean()),
    )


def compare_values(comparison: Comparison, candidate: float | None, baseline: float | None) -> ComparisonOutcome:
    """One value per model (memory, load time): a plain ratio against the margin."""
    if candidate is None or baseline is None or baseline <= 0:
        side = "candidate" if candidate is None else "baseline"
        return ComparisonOutcome(comparison, "cannot_judge", reason=f"{comparison.metric} was not measured for the {side}")
    ratio = candidate / baseline
    worse = ratio > comparison.max_ratio if comparison.max_ratio is not None else ratio < (comparison.min_ratio or 0)
    return ComparisonOutcome(
        comparison, "regression" if worse else "within_margin", ratio, samples=1,
        candidate_value=candidate, baseline_value=baseline,
    )


def family_confidence(confidence: float, comparisons: int) -> float:
    """Bonferroni: each of k intervals at 1 − α/k keeps the family's false-regression rate ≤ α."""
    return 1 - (1 - confidence) / max(1, comparisons)


def planned_looks(first_repeats: int, max_repeats: int) -> int:
    """The looks ``inconclusive: more`` may take: the first, then one per doubling up to ``max_repeats``."""
    return 1 + max(0, math.ceil(math.log2(max(max_repeats, first_repeats) / max(first_repeats, 1))))
