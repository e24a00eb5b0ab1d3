"""Metric names, their units and the statistics that budgets and reports apply to them.

One spelling everywhere (SPEC 2.4): thresholds, JUnit properties, history and HTML all use the
names defined here, so a metric cannot be called two things in two places.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Measured once per generation; budgets apply a statistic over the generations.
GENERATION_METRICS: dict[str, str] = {
    "ttft_ms": "ms",
    "ttfat_ms": "ms",  # to the first answer token after the reasoning (OpenAI backend)
    "tpot_ms": "ms",
    "e2e_ms": "ms",
    "tokens_per_s": "tok/s",
    "decode_tokens_per_s": "tok/s",
    "output_tokens": "tok",
    "prompt_tokens": "tok",
    "reasoning_tokens": "tok",
}

#: Measured once per model per run; budgets compare the value itself.
MODEL_METRICS: dict[str, str] = {
    "load_s": "s",
    "vram_load_gb": "GB",
    "vram_peak_gb": "GB",
    "rss_load_gb": "GB",
    "rss_peak_gb": "GB",
}

#: Share of cases judged correct; budgets compare the share.
ACCURACY = "accuracy"

STATISTICS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean", "min", "max")

#: Metrics that are a share between 0 and 1: shown as percentages, bounded to [0, 1].
SHARE_METRICS = frozenset({ACCURACY, "load.success_rate"})

#: Metrics where larger is better; decides which way "worse" points in reports.
HIGHER_IS_BETTER = frozenset({"tokens_per_s", "decode_tokens_per_s", ACCURACY})


def unit_of(metric: str) -> str:
    """The unit a metric is reported in ('' for accuracy, a share)."""
    return GENERATION_METRICS.get(metric) or MODEL_METRICS.get(metric) or ""


def format_number(value: float) -> str:
    """A measured value with the digits that matter: 412, 89.3, 6.72, 0.0004."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1 or value == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default does."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def statistic(values: Sequence[float], name: str) -> float:
    """Apply one of STATISTICS to values."""
    if not values:
        raise ValueError(f"{name} of no values")
    if name == "mean":
        return float(sum(values) / len(values))
    if name == "min":
        return float(min(values))
    if name == "max":
        return float(max(values))
    if name.startswith("p") and name in STATISTICS:
        return percentile(values, float(name[1:]))
    raise ValueError(f"unknown statistic {name!r}; expected one of {', '.join(STATISTICS)}")


@dataclass(frozen=True)
class Proportion:
    """A share with its Wilson score interval, honest for the small counts a suite has."""

    successes: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    def __str__(self) -> str:
        if not self.total:
            return "n/a"
        return f"{self.value:.0%} ({self.successes}/{self.total}, 95% CI {self.low:.0%}–{self.high:.0%})"


def wilson_interval(successes: int, total: int, z: float = 1.959963984540054) -> Proportion:
    """Wilson score interval for a binomial share (default 95 %)."""
    if total <= 0:
        return Proportion(successes, total, float("nan"), float("nan"))
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return Proportion(successes, total, max(0.0, centre - half), min(1.0, centre + half))
