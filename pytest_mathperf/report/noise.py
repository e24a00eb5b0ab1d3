"""The interval around each point of a trend: how far the run's own samples let the value move.

A percentile gets the distribution-free 95 % confidence interval of that quantile from its
order statistics (scipy's ``quantile_test``), so a step inside the interval reads as noise. An
accuracy gets its Wilson interval. A value measured once per run (load time, memory) has none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_mathperf.metrics import wilson_interval
from pytest_mathperf.report.formatting import number

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    text: str  # for the hover; says why there is none when there is none


NONE = Interval(None, None, "")


def quantile_interval(samples: Sequence[float], statistic: str | None, scale: float = 1.0) -> Interval:
    """The CONFIDENCE interval of a percentile statistic (``p50``, ``p95``…) or of the mean of the samples."""
    if statistic == "mean":
        return mean_interval(samples, scale)
    if not statistic or not statistic.startswith("p") or not statistic[1:].isdigit() or not samples:
        return NONE
    from scipy.stats import quantile_test  # scipy is slow to import; only a page with samples needs it

    share = int(statistic[1:]) / 100
    interval = quantile_test(list(samples), p=share).confidence_interval(CONFIDENCE)
    low, high = float(interval.low), float(interval.high)
    what = "median" if statistic == "p50" else statistic
    if math.isnan(low) or math.isnan(high):
        return Interval(None, None, f"too few samples for a {CONFIDENCE:.0%} CI of the {what}, n = {len(samples)}")
    return Interval(low * scale, high * scale, f"{CONFIDENCE:.0%} CI of the {what} {number(low)}–{number(high)}, n = {len(samples)}")


def mean_interval(samples: Sequence[float], scale: float = 1.0) -> Interval:
    """The CONFIDENCE interval of the mean (Student's t, scipy's ``ttest_1samp``)."""
    if len(samples) < 2:
        return Interval(None, None, f"too few samples for a {CONFIDENCE:.0%} CI of the mean, n = {len(samples)}")
    from scipy.stats import ttest_1samp

    interval = ttest_1samp(list(samples), 0.0).confidence_interval(CONFIDENCE)
    low, high = float(interval.low), float(interval.high)
    if math.isnan(low) or math.isnan(high):  # every sample the same: no spread to speak of
        low = high = float(samples[0])
    return Interval(low * scale, high * scale, f"{CONFIDENCE:.0%} CI of the mean {number(low)}–{number(high)}, n = {len(samples)}")


def share_interval(passed: int, total: int, scale: float = 100.0) -> Interval:
    """The Wilson interval of an accuracy (charted in percent)."""
    if total <= 0:
        return NONE
    proportion = wilson_interval(passed, total)
    return Interval(
        proportion.low * scale, proportion.high * scale,
        f"{passed}/{total}, {CONFIDENCE:.0%} CI {proportion.low:.0%}–{proportion.high:.0%}",
    )
