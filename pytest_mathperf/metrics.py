"""Every metric the gate knows, in one registry: name, unit, title, kind, direction and format.

One spelling everywhere: thresholds, JUnit properties, history, the terminal summary and the HTML
report all look a metric up here, so a metric cannot be called two things in two places, and
"which way is worse" (what a comparison against a baseline needs) is decided once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

#: generation: one value per generation (budgets take a statistic over them);
#: model: one value per model per run; load: one value per load profile (``sampled`` ones keep a
#: value per request); share: a share of cases (accuracy).
MetricKind = Literal["generation", "model", "load", "share"]
Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """What a metric is and how it is shown."""

    name: str
    unit: str  # "" for counts and shares
    title: str
    kind: MetricKind
    direction: Direction  # which way is better
    share: bool = False  # a share between 0 and 1, shown as a percentage
    sampled: bool = False  # has several values per run, so budgets name a statistic

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def timing(self) -> bool:
        """A time or a rate: what a busy host distorts (memory, counts and accuracy it does not)."""
        return self.unit in ("ms", "s", "tok/s", "req/s")

    def format(self, value: float, *, unit: bool = True) -> str:
        """The value with the digits that matter (412, 89.3, 6.72 GB, 95.0%)."""
        if self.share:
            return f"{value:.1%}"
        text = format_number(value)
        return f"{text} {self.unit}" if unit and self.unit else text


def _generation(name: str, unit: str, title: str, direction: Direction = "lower") -> Metric:
    return Metric(name, unit, title, "generation", direction, sampled=True)


def _model(name: str, unit: str, title: str) -> Metric:
    return Metric(name, unit, title, "model", "lower")


def _load(name: str, unit: str, title: str, direction: Direction = "lower", **flags: bool) -> Metric:
    return Metric(name, unit, title, "load", direction, **flags)


ACCURACY = "accuracy"

METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        _generation("ttft_ms", "ms", "TTFT"),
        _generation("ttfat_ms", "ms", "TTFAT"),  # to the first answer token after the reasoning
        _generation("tpot_ms", "ms", "TPOT"),
        _generation("e2e_ms", "ms", "end-to-end"),
        _generation("tokens_per_s", "tok/s", "tokens/s", "higher"),
        _generation("decode_tokens_per_s", "tok/s", "decode tokens/s", "higher"),
        _generation("output_tokens", "tok", "output tokens"),
        _generation("prompt_tokens", "tok", "prompt tokens"),
        _generation("reasoning_tokens", "tok", "reasoning tokens"),
        _generation("retries", "", "retries"),
        _generation("retry_wait_ms", "ms", "retry wait"),
        _generation("prepare_ms", "ms", "prepare (template + tokenize)"),
        _model("load_s", "s", "load"),
        _model("warmup_s", "s", "warm-up"),
        _model("latency_sample_s", "s", "latency sample (batch 1)"),
        _model("answer_pass_s", "s", "answer pass"),
        Metric("answer_tokens_per_s", "tok/s", "answer pass: aggregate tokens/s", "model", "higher"),
        Metric("answer_concurrency", "", "answer pass: concurrency", "model", "higher"),
        _model("vram_load_gb", "GB", "VRAM after load"),
        _model("vram_load_peak_gb", "GB", "VRAM peak during load"),
        _model("vram_peak_gb", "GB", "VRAM peak"),
        _model("rss_load_gb", "GB", "RSS after load"),
        _model("rss_load_peak_gb", "GB", "RSS peak during load"),
        _model("rss_peak_gb", "GB", "RSS peak"),
        Metric(ACCURACY, "", "accuracy", "share", "higher", share=True),
        _load("load.success_rate", "", "load: success rate", "higher", share=True),
        _load("load.requests", "", "load: requests", "higher"),
        _load("load.failed", "", "load: failed requests"),
        _load("load.requests_per_s", "req/s", "load: requests/s", "higher"),
        _load("load.tokens_per_s", "tok/s", "load: tokens/s", "higher"),
        _load("load.client_cpu_share", "", "load: client CPU share", share=True),
        _load("load.client_cpu_ms_per_request", "ms", "load: client CPU per request"),
        _load("load.retries", "", "load: retried requests"),
        _load("load.loop_lag_ms", "ms", "load: event-loop lag"),
        _load("load.e2e_ms", "ms", "load: end-to-end", sampled=True),
        _load("load.ttft_ms", "ms", "load: TTFT", sampled=True),
        _load("load.server_cpu_percent", "%", "load: server CPU (of all cores)", sampled=True),
        _load("load.server_rss_gb", "GB", "load: server RSS", sampled=True),
        _load("load.gpu_util_percent", "%", "load: GPU busy", sampled=True),
        _load("load.gpu_memory_gb", "GB", "load: GPU memory", sampled=True),
        _load("load.gpu_power_w", "W", "load: GPU power", sampled=True),
    )
}


def _names(kind: MetricKind) -> dict[str, str]:
    return {name: metric.unit for name, metric in METRICS.items() if metric.kind == kind}


#: Measured once per generation; budgets apply a statistic over the generations.
GENERATION_METRICS: dict[str, str] = _names("generation")
#: Measured once per model per run; budgets compare the value itself.
MODEL_METRICS: dict[str, str] = _names("model")
#: Measured by a load profile; the sampled ones keep a value per request.
LOAD_METRICS: dict[str, str] = _names("load")
LOAD_SAMPLE_METRICS: dict[str, str] = {name: unit for name, unit in LOAD_METRICS.items() if METRICS[name].sampled}
#: Memory of the process under test: only an in-process model can be held to these.
MEMORY_METRICS = frozenset(name for name in MODEL_METRICS if name.startswith(("vram_", "rss_")))
#: Metrics that are a share between 0 and 1: shown as percentages, bounded to [0, 1].
SHARE_METRICS = frozenset(name for name, metric in METRICS.items() if metric.share)
#: Metrics where larger is better; decides which way "worse" points in reports and comparisons.
HIGHER_IS_BETTER = frozenset(name for name, metric in METRICS.items() if metric.higher_is_better)

STATISTICS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean", "min", "max")


def unit_of(name: str) -> str:
    """The unit a metric is reported in ('' for counts and shares, and for names not registered)."""
    found = METRICS.get(name)
    return found.unit if found else ""


def title_of(name: str) -> str:
    found = METRICS.get(name)
    return found.title if found else name


def format_value(name: str, value: float, *, unit: bool = True) -> str:
    """A value of metric ``name`` as every output shows it; unregistered names get a plain number."""
    found = METRICS.get(name)
    return found.format(value, unit=unit) if found else format_number(value)


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
    """The q-th percentile (0-100), linearly interpolated (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    import numpy

    return float(numpy.percentile(numpy.asarray(values, dtype=float), q))


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
    confidence: float = 0.95

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    def __str__(self) -> str:
        if not self.total:
            return "n/a"
        return (
            f"{self.value:.0%} ({self.successes}/{self.total}, {self.confidence:.0%} CI "
            f"{self.low:.0%}–{self.high:.0%})"
        )


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> Proportion:
    """Wilson score interval for a binomial share.

    The closed form that scipy's ``binomtest(...).proportion_ci(method="wilson")`` evaluates
    (Newcombe 1998), with the normal quantile from the standard library: every gate reports
    its accuracy so, and importing scipy.stats would cost a demo gate 0.47 s, 7 % of its run.
    tests/test_metrics.py holds the two equal.
    """
    if total <= 0:
        return Proportion(successes, total, float("nan"), float("nan"), confidence)
    z = NormalDist().inv_cdf(0.5 + 0.5 * confidence)
    share = successes / total
    denominator = 2 * (total + z * z)
    center = (2 * total * share + z * z) / denominator
    delta = z / denominator * math.sqrt(4 * total * share * (1 - share) + z * z)
    low = 0.0 if successes == 0 else max(0.0, center - delta)
    high = 1.0 if successes == total else min(1.0, center + delta)
    return Proportion(successes, total, low, high, confidence)
