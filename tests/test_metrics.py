"""Statistics: percentiles as numpy computes them, Wilson intervals as published tables give them."""

from __future__ import annotations

import math

import pytest

from pytest_mathperf.backends import Generation
from pytest_mathperf.metrics import percentile, statistic, wilson_interval


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1, 2, 3, 4], 50, 2.5), ([1, 2, 3, 4], 95, 3.85), ([5], 99, 5.0), ([3, 1, 2], 0, 1.0), ([3, 1, 2], 100, 3.0)],
)
def test_percentile_interpolates_linearly(values, q, expected) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_statistic_names() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert statistic(values, "mean") == 25.0
    assert statistic(values, "min") == 10.0
    assert statistic(values, "max") == 40.0
    assert statistic(values, "p50") == 25.0
    with pytest.raises(ValueError, match="unknown statistic 'median'"):
        statistic(values, "median")
    with pytest.raises(ValueError, match="of no values"):
        statistic([], "p50")


def test_wilson_interval_matches_the_textbook() -> None:
    share = wilson_interval(19, 20)  # 95 % with 20 trials: 0.764 to 0.991
    assert share.value == 0.95
    assert share.low == pytest.approx(0.7639, abs=1e-4)
    assert share.high == pytest.approx(0.9911, abs=1e-4)
    assert str(share) == "95% (19/20, 95% CI 76%–99%)"
    perfect = wilson_interval(3, 3)
    assert perfect.high == 1.0 and perfect.low == pytest.approx(0.4385, abs=1e-4)
    assert math.isnan(wilson_interval(0, 0).value)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99, 0.999])
def test_wilson_interval_is_scipys(confidence: float) -> None:
    from scipy.stats import binomtest

    for total in (1, 2, 5, 20, 48, 137, 1000):
        for successes in sorted({*range(0, total + 1, max(1, total // 40)), 1, total - 1, total}):
            expected = binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
            share = wilson_interval(successes, total, confidence)
            assert (share.low, share.high) == pytest.approx((expected.low, expected.high), abs=1e-12), (successes, total)


def test_generation_derives_rates_as_the_spec_defines_them() -> None:
    generation = Generation(
        text="x", prompt_tokens=10, output_tokens=11, reasoning_tokens=4, ttft_ms=100.0, e2e_ms=1100.0, finish_reason="stop"
    )
    assert generation.tpot_ms == 100.0  # (1100 - 100) / (11 - 1)
    assert generation.tokens_per_s == pytest.approx(10.0)  # 11 / 1.1 s
    assert generation.decode_tokens_per_s == pytest.approx(10.0)  # 10 / 1.0 s
    metrics = generation.metrics()
    assert metrics["ttft_ms"] == 100.0 and metrics["reasoning_tokens"] == 4.0
    single = Generation(text="", prompt_tokens=1, output_tokens=1, reasoning_tokens=0, ttft_ms=5.0, e2e_ms=5.0, finish_reason="stop")
    assert single.tpot_ms is None and single.decode_tokens_per_s is None
    assert "tpot_ms" not in single.metrics()
