"""What one run measured, as plain frozen values shared by the plugin, the history and the report.

Records travel from xdist workers to the controller as JSON-able dicts on test reports, so every
record converts to and from a dict losslessly (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_mathperf.metrics import METRICS, statistic


@dataclass(frozen=True)
class GenerationRecord:
    """One measured generation of one case (warm-ups are never recorded)."""

    repeat: int
    seed: int
    status: str  # a Verdict status: correct | wrong | no_answer | truncated | error
    extracted: str | None
    reason: str
    finish_reason: str | None
    metrics: Mapping[str, float]
    output: str  # the raw model output (or the backend's error message for status "error")
    facts: Mapping[str, str] = field(default_factory=dict)  # where counts came from, retries, ...

    @property
    def estimated_metrics(self) -> frozenset[str]:
        return frozenset(filter(None, self.facts.get("estimated_metrics", "").split(",")))

    @property
    def under_concurrency(self) -> bool:
        """Whether its timings were taken with other generations in flight (the answer pass at N > 1)."""
        return self.facts.get("concurrency", "1") != "1"

    def comparable_metrics(self) -> dict[str, float]:
        """Its metrics as trends and summaries take them: timings under concurrency left out (see ``_measured``)."""
        if not self.under_concurrency:
            return dict(self.metrics)
        return {name: value for name, value in self.metrics.items() if not (name in METRICS and METRICS[name].timing)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRecord:
        return cls(**data)


def _measured(generation: GenerationRecord, metric: str, estimated: bool) -> bool:
    """Whether a generation's value of ``metric`` counts as a measurement (see ``CaseRecord.samples``)."""
    value = generation.metrics.get(metric)
    return (
        generation.status != "error"
        and value is not None
        and not math.isnan(value)
        and (estimated or metric not in generation.estimated_metrics)
        # timings under concurrency N are kept with the generation, never mixed into batch-1 figures
        and not (generation.under_concurrency and metric in METRICS and METRICS[metric].timing)
    )


@dataclass(frozen=True)
class CaseRecord:
    """One case × model: its generations and whether it passed its pass rule."""

    model: str
    suite: str
    case: str
    nodeid: str
    prompt: str
    expected: str
    tags: tuple[str, ...]
    pass_rule: str
    passed: bool
    generations: tuple[GenerationRecord, ...]

    @property
    def correct_count(self) -> int:
        return sum(1 for generation in self.generations if generation.status == "correct")

    @property
    def verdict(self) -> str:
        """``correct`` when the pass rule holds, else the most common failing status."""
        if self.passed:
            return "correct"
        failing = [g.status for g in self.generations if g.status != "correct"]
        return max(set(failing), key=failing.count) if failing else "wrong"

    def keyed_samples(self, metric: str, *, estimated: bool = True) -> dict[tuple[str, str, int], float]:
        """The same values as :meth:`samples`, keyed by (suite, case, repeat) so two models' generations pair up."""
        return {
            (self.suite, self.case, g.repeat): g.metrics[metric]
            for g in self.generations
            if _measured(g, metric, estimated)
        }

    def samples(self, metric: str, *, estimated: bool = True) -> list[float]:
        """The metric's values over this case's measured generations.

        A generation that failed (a timeout, an HTTP error mid-stream) is counted and shown as an
        error, never averaged in: its timings describe the failure, not the model. Missing and NaN
        values are left out too, and with ``estimated=False`` values that rest on an estimated token
        count (a server that sent no usage, counted by stream chunks).
        """
        return [g.metrics[metric] for g in self.generations if _measured(g, metric, estimated)]

    @property
    def failed_generations(self) -> int:
        return sum(1 for generation in self.generations if generation.status == "error")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseRecord:
        values = dict(data)
        values["tags"] = tuple(values["tags"])
        values["generations"] = tuple(GenerationRecord.from_dict(g) for g in values["generations"])
        return cls(**values)


@dataclass(frozen=True)
class ModelRecord:
    """One model as loaded in this run, with its per-model metrics (load time, memory)."""

    model: str
    backend: str
    card: str
    device: str | None
    dtype: str | None
    revision: str | None
    source: str | None
    metrics: Mapping[str, float]  # load_s, vram_load_gb, vram_peak_gb, rss_load_gb, rss_peak_gb
    memory_source: str | None  # nvml-process | torch-reserved | rss; None for a remote model
    load_error: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        return cls(**data)


@dataclass(frozen=True)
class BudgetRecord:
    """One budget's outcome, as it was shown to the user."""

    model: str
    name: str  # e.g. "ttft_ms.p50" or "accuracy"
    metric: str
    statistic: str | None
    scope: str  # model | suite | case | load
    suite: str | None
    case: str | None
    minimum: float | None
    maximum: float | None
    measured: float | None
    samples: int
    passed: bool
    card: str
    nodeid: str
    status: str = ""  # passed | failed | inconclusive ("" in records older than the status)
    reason: str = ""

    @property
    def verdict(self) -> str:
        return self.status or ("passed" if self.passed else "failed")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BudgetRecord:
        return cls(**data)


@dataclass(frozen=True)
class ComparisonRecord:
    """One candidate-against-baseline comparison, as it was shown to the user."""

    model: str  # the candidate
    baseline: str  # a model of this run, or "blessed run N"
    name: str  # e.g. "ttft_ms.p50" or "accuracy"
    metric: str
    statistic: str | None
    suite: str | None
    margin: str  # e.g. "ratio ≤ 1.25" or "drop ≤ 5.0%"
    verdict: str  # regression | within_margin | inconclusive
    estimate: float | None  # the ratio, or the accuracy drop
    low: float | None
    high: float | None
    p_value: float | None
    samples: int
    candidate_value: float | None
    baseline_value: float | None
    reason: str
    card: str
    nodeid: str
    confidence: float | None = None  # the interval's level, corrected for the candidate's comparisons (older records: none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ComparisonRecord:
        return cls(**data)


@dataclass(frozen=True)
class RunRecord:
    """A whole run: the environment it ran in and everything it measured and decided."""

    started_at: float  # unix seconds
    finished_at: float
    environment: Mapping[str, str]  # card, driver, cuda, torch, transformers, host, suites_commit, ...
    models: tuple[ModelRecord, ...]
    cases: tuple[CaseRecord, ...]
    budgets: tuple[BudgetRecord, ...]
    comparisons: tuple[ComparisonRecord, ...] = ()

    def cases_of(self, model: str) -> list[CaseRecord]:
        return [case for case in self.cases if case.model == model]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        return cls(
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            environment=dict(data["environment"]),
            models=tuple(ModelRecord.from_dict(m) for m in data["models"]),
            cases=tuple(CaseRecord.from_dict(c) for c in data["cases"]),
            budgets=tuple(BudgetRecord.from_dict(b) for b in data["budgets"]),
            comparisons=tuple(ComparisonRecord.from_dict(c) for c in data.get("comparisons", ())),
        )


def summary_statistic(cases: Sequence[CaseRecord], metric: str, name: str, *, estimated: bool = True) -> float | None:
    """A statistic of one per-generation metric over all generations of some cases (see ``CaseRecord.samples``)."""
    values = [value for case in cases for value in case.samples(metric, estimated=estimated)]
    return statistic(values, name) if values else None
