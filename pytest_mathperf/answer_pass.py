"""A model's cases in two passes: a batch-1 latency sample, then the answers at concurrency N.

Answers only need tokens, as fast as the hardware gives them; latency must be measured alone.
The latency sample (by default the first repeat of every case, capped at a few hundred new
tokens) runs one generation at a time, inside the memory monitor's peak window. The answer pass
then generates every other repeat with up to N in flight (batched in-process, N streams over
HTTP); its generations carry ``concurrency`` in their facts, and their timings never enter a
batch-1 figure (see ``results.CaseRecord.samples``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pytest_mathperf.backends import BackendError, Generation, GenerationRequest
from pytest_mathperf.hostload import snapshot
from pytest_mathperf.results import GenerationRecord

if TYPE_CHECKING:
    from pytest_mathperf.runner import ModelSession
    from pytest_mathperf.suite import Case, Suite

#: max_new_tokens of a latency-sample generation unless set: TTFT and the decode rate settle long
#: before 2,048 tokens, and at a reasoning model's settings a full-length batch-1 pass takes hours.
DEFAULT_LATENCY_TOKENS = 256
#: Timing metrics an answer-pass generation measured under concurrency: kept, never batch-1 figures.
CONCURRENCY_FACT = "concurrency"
LATENCY_FACT = "latency_sample"


@dataclass(frozen=True)
class PassSettings:
    """How a run splits into the latency sample and the answer pass."""

    concurrency: int = 1
    latency_repeats: int | None = None  # the first repeats of each case measured alone; None: the suite's, else 1
    latency_tokens: int | None = None  # their cap; 0: the case's own max_new_tokens; None: the suite's, else 256
    stop_early: bool = False  # stop adding repeats of a case once its pass rule is decided

    def latency_for(self, suite: Suite) -> tuple[int, int | None]:
        """The repeats sampled and their cap (None: none) for ``suite``: the run's setting, the suite's, the default."""
        repeats = next(v for v in (self.latency_repeats, suite.latency.repeats, 1) if v is not None)
        tokens = next(v for v in (self.latency_tokens, suite.latency.max_new_tokens, DEFAULT_LATENCY_TOKENS) if v is not None)
        return repeats, tokens or None


@dataclass
class ModelPass:
    """What the two passes produced for one model, and where the time went."""

    generations: dict[tuple[str, str], list[GenerationRecord]] = field(default_factory=dict)
    planned: dict[tuple[str, str], int] = field(default_factory=dict)  # repeats each case was planned with
    #: latency samples cut at the cap, by case and repeat: their timings go onto the repeat's whole answer
    cut_samples: dict[tuple[tuple[str, str], int], GenerationRecord] = field(default_factory=dict)
    latency_sample_s: float = 0.0
    answer_pass_s: float = 0.0
    answer_tokens: int = 0
    concurrency_used: int = 1

    def merge(self, other: ModelPass) -> None:
        """Add a later pass over cases this one did not plan (a case run outside the selection's plan)."""
        self.generations.update(other.generations)
        self.planned.update(other.planned)
        self.latency_sample_s += other.latency_sample_s
        self.answer_pass_s += other.answer_pass_s
        self.answer_tokens += other.answer_tokens
        self.concurrency_used = max(self.concurrency_used, other.concurrency_used)

    def metrics(self) -> dict[str, float]:
        values = {"latency_sample_s": self.latency_sample_s, "answer_pass_s": self.answer_pass_s}
        if self.answer_pass_s > 0 and self.answer_tokens:
            values["answer_tokens_per_s"] = self.answer_tokens / self.answer_pass_s
            values["answer_concurrency"] = float(self.concurrency_used)
        return values


Judge = Callable[["Case", int, int, "Generation | BackendError"], GenerationRecord]
RequestFor = Callable[["Case", int], GenerationRequest]
#: One generation the answer pass owes: (suite, case id), the case, the repeat.
Pending = tuple[tuple[str, str], "Case", int]


def decided(case: Case, correct: int, done: int, planned: int) -> bool:
    """Whether the pass rule's outcome over ``planned`` repeats is known after ``done`` of them.

    Known when the remaining repeats all correct and all wrong would give the same outcome, so
    stopping changes no case verdict: the error rate of everything judged on verdicts is untouched.
    """
    remaining = planned - done
    return case.passes(correct, planned) == case.passes(correct + remaining, planned)


def run_model_pass(
    session: ModelSession,
    cases: Sequence[tuple[Suite, Case, int]],
    settings: PassSettings,
    request_for: RequestFor,
    judge: Judge,
) -> ModelPass:
    """Run the latency sample, then the answer pass, for ``cases`` (suite, case, repeats) of one loaded model."""
    result = ModelPass(planned={(suite.name, case.id): repeats for suite, case, repeats in cases})
    pending = _latency_sample(session, cases, settings, request_for, judge, result)
    if session.monitor is not None:
        session.monitor.stop()  # the peak window holds the batch-1 sample only, never a batch of N
    _answer_pass(session, pending, settings, request_for, judge, result)
    for generations in result.generations.values():
        generations.sort(key=lambda generation: generation.repeat)
    return result


def _latency_sample(
    session: ModelSession,
    cases: Sequence[tuple[Suite, Case, int]],
    settings: PassSettings,
    request_for: RequestFor,
    judge: Judge,
    result: ModelPass,
) -> list[Pending]:
    """Generate the sampled repeats one at a time; return the (case, repeat) pairs left for the answer pass."""
    backend = session.backend
    assert backend is not None
    pending: list[Pending] = []
    started, host_before = time.perf_counter(), snapshot()
    for suite, case, repeats in cases:
        key = (suite.name, case.id)
        kept = result.generations.setdefault(key, [])
        sampled, cap = settings.latency_for(suite)
        for repeat in range(repeats):
            if repeat >= sampled:
                pending.append((key, case, repeat))
                continue
            request = request_for(case, repeat)
            capped = cap is not None and cap < request.max_new_tokens
            if capped:
                request = replace(request, max_new_tokens=cap)
            outcome = _generate_one(backend, request)
            record = judge(case, repeat, request.seed, outcome)
            record = replace(record, facts={**record.facts, LATENCY_FACT: "batch 1", CONCURRENCY_FACT: "1"})
            cut_short = capped and isinstance(outcome, Generation) and outcome.finish_reason == "length"
            if cut_short:  # its timings are the sample; its answer was cut at the cap, so generate it whole
                record = replace(record, facts={**record.facts, "latency_tokens": str(cap)})
                result.cut_samples[(key, repeat)] = record
                pending.append((key, case, repeat))
            else:
                kept.append(record)
    result.latency_sample_s = time.perf_counter() - started
    session.host_load = session.host_load.plus(host_before, snapshot())
    return pending


def _generate_one(backend: Any, request: GenerationRequest) -> Generation | BackendError:
    try:
        return backend.generate(request)
    except BackendError as error:
        return error


def _answer_pass(
    session: ModelSession,
    pending: list[Pending],
    settings: PassSettings,
    request_for: RequestFor,
    judge: Judge,
    result: ModelPass,
) -> None:
    """Generate ``pending`` at up to ``settings.concurrency`` in flight, in rounds by repeat when stopping early."""
    from pytest_mathperf.concurrent import generate_many

    backend = session.backend
    assert backend is not None
    started = time.perf_counter()
    rounds = _rounds(pending) if settings.stop_early else [pending]
    for batch in rounds:
        todo = [(key, case, repeat) for key, case, repeat in batch if not _known(result, key, case, settings)]
        if not todo:
            continue
        requests = [request_for(case, repeat) for _, case, repeat in todo]
        outcomes, used = generate_many(backend, requests, settings.concurrency)
        result.concurrency_used = max(result.concurrency_used, used)
        for (key, case, repeat), request, outcome in zip(todo, requests, outcomes):
            record = judge(case, repeat, request.seed, outcome)
            record = replace(record, facts={**record.facts, CONCURRENCY_FACT: str(used)})
            result.generations[key].append(_with_latency_timings(record, result.cut_samples.get((key, repeat))))
            if isinstance(outcome, Generation):
                result.answer_tokens += outcome.output_tokens
    result.answer_pass_s = time.perf_counter() - started


def _rounds(pending: list[Pending]) -> list[list[Pending]]:
    by_repeat: dict[int, list[Pending]] = {}
    for entry in pending:
        by_repeat.setdefault(entry[2], []).append(entry)
    return [by_repeat[repeat] for repeat in sorted(by_repeat)]


def _known(result: ModelPass, key: tuple[str, str], case: Case, settings: PassSettings) -> bool:
    if not settings.stop_early:
        return False
    generations = result.generations[key]
    correct = sum(1 for generation in generations if generation.status == "correct")
    return decided(case, correct, len(generations), result.planned[key])


def _with_latency_timings(record: GenerationRecord, sample: GenerationRecord | None) -> GenerationRecord:
    """The answer of a repeat whose latency sample was cut at the cap, carrying that sample's batch-1 timings.

    The timing names keep one meaning (batch 1); the answer's own timings stay under concurrency.
    """
    if sample is None:
        return record
    from pytest_mathperf.metrics import METRICS

    timings = {name: value for name, value in sample.metrics.items() if name in METRICS and METRICS[name].timing}
    answer_timings = {f"answer_pass.{name}": value for name, value in record.metrics.items() if name in timings}
    counts = {name: value for name, value in record.metrics.items() if name not in timings}
    facts = {**record.facts, LATENCY_FACT: "batch 1", "latency_tokens": sample.facts.get("latency_tokens", "")}
    facts[CONCURRENCY_FACT] = "1"  # its timing names are the batch-1 sample's
    return replace(record, metrics={**counts, **timings, **answer_timings}, facts=facts)
