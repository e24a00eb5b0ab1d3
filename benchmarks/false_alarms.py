#!/usr/bin/env python
"""How often the comparison gate calls a candidate a regression when it is not: a Monte Carlo
over the project's own comparison functions, no model.

Each simulated gate compares a candidate whose true ratio lies exactly at the margin (the
hardest case that must not fail) with two comparisons, ``ttft_ms p50 max_ratio 1.10`` and
``tokens_per_s mean min_ratio 0.90``, each at the family-corrected confidence the gate uses. A
"family false regression" is a gate where either comes out ``regression``. Generations are
log-normal: a level per case, an optional case × model effect, a drift per run, noise per
generation. Scenarios:

- ``margin``: 12 cases, 1 repeat, interleaved in one run;
- ``clustered``: 12 cases × 4 repeats with a case × model effect of sd 0.10 (what the
  per-generation bootstrap got wrong: repeats of one case are not independent evidence);
- ``blessed drift 3/5/10 %``: against 3 blessed runs, each run (and the candidate's) shifted by a
  run-level drift of that size;
- ``more, 4 looks``: 12 cases, repeats 1 → 2 → 4 → 8 while inconclusive (case × model sd 0.10).

    python benchmarks/false_alarms.py --gates 400

Prints each rate with its 95 % Clopper-Pearson interval (the simulation's own error) against the
promised bound 1 − confidence.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy
from scipy import stats

from pytest_mathperf.compare import (
    Comparison,
    compare_samples,
    family_confidence,
    planned_looks,
    spread_between_runs,
)

HERE = Path("thresholds.yaml")
COMPARISONS = (
    Comparison("ttft_ms", "p50", 1.10, None, None, "model", None, HERE, 1),
    Comparison("tokens_per_s", "mean", None, 0.90, None, "model", None, HERE, 2),
)
CONFIDENCE = 0.95
CASES = 12
GENERATION_SD = 0.10  # log sd of one generation around its case's level
Keyed = dict[tuple[str, str, int], float]


def generations(rng: numpy.random.Generator, levels: numpy.ndarray, shift: float, repeats: range) -> Keyed:
    """One model's generations: its case levels, a shift (the true log ratio plus any run drift), noise."""
    return {
        ("s", f"c{case}", repeat): float(math.exp(levels[case] + shift + rng.normal(0, GENERATION_SD)))
        for case in range(len(levels)) for repeat in repeats
    }


def case_levels(rng: numpy.random.Generator, case_model_sd: float) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The baseline's and the candidate's levels per case: shared, plus the case × model effect."""
    shared = rng.normal(math.log(50), 0.3, CASES)
    return shared + rng.normal(0, case_model_sd, CASES), shared + rng.normal(0, case_model_sd, CASES)


def margin_shift(comparison: Comparison) -> float:
    """The candidate's true log ratio: exactly at the margin (a time larger, a rate smaller)."""
    margin = comparison.max_ratio if comparison.max_ratio is not None else comparison.min_ratio
    assert margin is not None
    return math.log(margin)


def one_look(rng: numpy.random.Generator, repeats: int, case_model_sd: float) -> bool:
    """One interleaved gate: a false regression on either comparison?"""
    confidence = family_confidence(CONFIDENCE, len(COMPARISONS))
    for comparison in COMPARISONS:
        base_levels, cand_levels = case_levels(rng, case_model_sd)
        base = generations(rng, base_levels, 0.0, range(repeats))
        cand = generations(rng, cand_levels, margin_shift(comparison), range(repeats))
        if compare_samples(comparison, cand, base, confidence).verdict == "regression":
            return True
    return False


def against_blessed(rng: numpy.random.Generator, drift: float, runs: int = 3) -> bool:
    """A candidate run against ``runs`` blessed runs, every run shifted by its own drift."""
    confidence = family_confidence(CONFIDENCE, len(COMPARISONS))
    for comparison in COMPARISONS:
        base_levels, _ = case_levels(rng, 0.0)
        blessed = [generations(rng, base_levels, rng.normal(0, drift), range(1)) for _ in range(runs)]
        pooled = {("s", case, index * 1000 + repeat): value for index, run in enumerate(blessed) for (_, case, repeat), value in run.items()}
        name = comparison.statistic or "mean"
        statistic = (lambda v: float(numpy.median(v))) if name == "p50" else (lambda v: float(numpy.mean(v)))
        spread = spread_between_runs([math.log(statistic(list(run.values()))) for run in blessed], f"between {runs} runs")
        cand = generations(rng, base_levels, margin_shift(comparison) + rng.normal(0, drift), range(1))
        if compare_samples(comparison, cand, pooled, confidence, spread).verdict == "regression":
            return True
    return False


def with_more(rng: numpy.random.Generator, case_model_sd: float = 0.10, max_repeats: int = 8) -> bool:
    """``inconclusive: more``: look, and while inconclusive double the repeats (new draws) and look again."""
    looks = planned_looks(1, max_repeats)
    confidence = family_confidence(CONFIDENCE, len(COMPARISONS) * looks)
    for comparison in COMPARISONS:
        base_levels, cand_levels = case_levels(rng, case_model_sd)
        base = generations(rng, base_levels, 0.0, range(1))
        cand = generations(rng, cand_levels, margin_shift(comparison), range(1))
        repeats = 1
        while True:
            verdict = compare_samples(comparison, cand, base, confidence).verdict
            if verdict != "inconclusive" or repeats >= max_repeats:
                break
            more = range(repeats, min(2 * repeats, max_repeats))
            base |= generations(rng, base_levels, 0.0, more)
            cand |= generations(rng, cand_levels, margin_shift(comparison), more)
            repeats = more.stop
        if verdict == "regression":
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=400, help="simulated gates per scenario (default 400)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    scenarios: dict[str, Callable[[numpy.random.Generator], bool]] = {
        "margin (12 cases, 1 repeat)": lambda rng: one_look(rng, 1, 0.0),
        "clustered (12 × 4, case×model sd 0.10)": lambda rng: one_look(rng, 4, 0.10),
        "3 blessed runs, drift 3 %": lambda rng: against_blessed(rng, 0.03),
        "3 blessed runs, drift 5 %": lambda rng: against_blessed(rng, 0.05),
        "3 blessed runs, drift 10 %": lambda rng: against_blessed(rng, 0.10),
        "more, 4 looks (1 → 8 repeats)": with_more,
    }
    bound = 1 - CONFIDENCE
    print(f"family false-regression rate, {args.gates} gates per scenario, bound {bound:.0%} (confidence {CONFIDENCE})")
    print(f"{'scenario':<42} {'false':>6} {'rate':>7}  {'95% interval':>16}  {'≤ bound':>7}  {'s':>5}")
    for name, scenario in scenarios.items():
        rng = numpy.random.default_rng(args.seed)
        started = time.perf_counter()
        false = sum(scenario(rng) for _ in range(args.gates))
        interval = stats.binomtest(false, args.gates).proportion_ci(0.95)
        verdict = "yes" if false / args.gates <= bound else "NO"
        print(
            f"{name:<42} {false:>6} {false / args.gates:>7.2%}  [{interval.low:>6.2%}, {interval.high:>6.2%}]  "
            f"{verdict:>7}  {time.perf_counter() - started:>5.0f}"
        )


if __name__ == "__main__":
    main()
