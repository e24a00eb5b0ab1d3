"""The statistics behind a comparison with the baseline, on samples a test chooses."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
from scipy import stats

from pytest_mathperf.compare import Comparison, compare_samples

TTFT_P50 = Comparison("ttft_ms", "p50", 1.25, None, None, "model", None, Path("thresholds.yaml"), 3)


def paired(values: list[float]) -> dict[tuple[str, str, int], float]:
    return {("arithmetic", f"case-{index}", 0): value for index, value in enumerate(values)}


def test_a_tied_timing_p_value_is_the_exact_distributions_and_never_below_the_permutation_tests() -> None:
    # Scripted-looking timings: few distinct values, so the differences tie.
    base = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9] * 2
    candidate = [6.5, 7.0, 6.0, 6.6, 6.5, 6.0] * 2
    outcome = compare_samples(TTFT_P50, paired(candidate), paired(base), 0.95)
    differences = numpy.log(candidate) - numpy.log(1.25) - numpy.log(base)
    exact = stats.wilcoxon(differences, alternative="greater", method="exact").pvalue
    permutation = stats.wilcoxon(differences, alternative="greater").pvalue  # scipy's choice: 2^12 sign patterns
    assert outcome.p_value == pytest.approx(exact)
    assert outcome.p_value >= permutation - 1e-12  # conservative: a regression is never claimed more surely
    assert outcome.samples == 12 and outcome.paired
    assert outcome.estimate == pytest.approx(numpy.median(candidate) / numpy.median(base))
