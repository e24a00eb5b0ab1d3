"""How the report names a metric and writes its values, dates and durations.

Every piece of metric knowledge the report uses (title, unit, direction, share or not, number
format) comes from the registry in ``metrics.py`` through this module and nowhere else in the report.
"""

from __future__ import annotations

import time

from pytest_mathperf.metrics import ACCURACY, HIGHER_IS_BETTER, SHARE_METRICS, format_number, title_of, unit_of  # noqa: F401 - title_of is the report's name for it


def chart_unit(metric: str) -> str:
    """The unit of a chart's values: shares are charted as percentages."""
    return "%" if metric in SHARE_METRICS else unit_of(metric)


def chart_scale(metric: str) -> float:
    """Factor from a recorded value to a charted one (shares 0–1 are charted 0–100)."""
    return 100.0 if metric in SHARE_METRICS else 1.0


def is_share(metric: str) -> bool:
    return metric in SHARE_METRICS


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER


def number(value: float) -> str:
    return format_number(value)


def with_unit(value: float, metric: str) -> str:
    """A recorded value as a reader sees it: ``412 ms``, ``89.3 tok/s``, ``75.0%``."""
    if metric in SHARE_METRICS:
        return f"{value:.1%}"
    return f"{format_number(value)}{unit_suffix(metric)}"


def unit_suffix(metric: str) -> str:
    unit = unit_of(metric)
    return f" {unit}" if unit and metric != ACCURACY else ""


def bound_text(minimum: float | None, maximum: float | None, metric: str, *, scaled: bool = True) -> str:
    """``≥ 95`` / ``≤ 350`` / both; share bounds as percentages when not already scaled."""

    def show(value: float) -> str:
        if metric in SHARE_METRICS and not scaled:
            return f"{value:.0%}"
        return format_number(value)

    parts = []
    if minimum is not None:
        parts.append(f"≥ {show(minimum)}")
    if maximum is not None:
        parts.append(f"≤ {show(maximum)}")
    return " and ".join(parts)


def with_bound_unit(bound: str, unit: str) -> str:
    return f"{bound} {unit}" if bound and unit else bound


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
