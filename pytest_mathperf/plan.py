"""``mathperf plan``: how long the gate will take, per model and concurrency, before it runs.

A gate that takes a working day gets switched off; one whose length nobody knows gets a CI
timeout that kills it at the worst moment. The estimate rests on what the history measured on
this card: tokens per answer (per case where the case was run before), TTFT and TPOT at batch 1,
the answer pass's aggregate tokens/s at each concurrency it ran at, and the load, warm-up and the
rest of the session (collection, judging, recording) of the newest run.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_mathperf.answer_pass import PassSettings
from pytest_mathperf.results import CaseRecord, RunRecord
from pytest_mathperf.suite import Case, Suite, is_suite_file, load_suite
from pytest_mathperf.timeline import PHASES, duration_text

#: How many of the newest runs are searched for one of this model on this card.
RUNS_SEARCHED = 50


@dataclass(frozen=True)
class Measured:
    """What one recorded run says about a model on a card, as the estimate needs it."""

    run_id: int
    ttft_ms: float
    tpot_ms: float
    tokens_per_answer: float
    tokens_by_case: dict[tuple[str, str], float]
    answer_tokens_per_s: dict[int, float]  # concurrency -> aggregate tokens/s of the answer pass
    load_s: float
    warmup_s: float
    other_s: float  # the session's time outside load, warm-up and the two passes


@dataclass(frozen=True)
class Estimate:
    concurrency: int
    parts: tuple[tuple[str, float], ...]  # (phase, seconds), in order

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.parts)

    def text(self) -> str:
        parts = ", ".join(f"{name} {duration_text(seconds)}" for name, seconds in self.parts)
        return f"concurrency {self.concurrency:>3}: about {duration_text(self.total_s)} ({self.total_s:.0f} s: {parts})"


@dataclass(frozen=True)
class PlanRequest:
    """What the gate will be asked to do."""

    model: str
    cases: tuple[tuple[Suite, Case], ...]
    repeats: int | None = None  # None: each case's own
    latency: PassSettings = PassSettings()  # the run-wide latency sample; a suite's own applies where this is unset
    concurrencies: tuple[int, ...] = field(default=(1, 16))


def suite_cases(paths: Sequence[Path], model: str) -> tuple[tuple[Suite, Case], ...]:
    """Every case the gate would collect for ``model`` from suite files under ``paths``."""
    files: list[Path] = []
    for path in paths:
        found = sorted(p for p in path.rglob("*") if is_suite_file(p)) if path.is_dir() else [path]
        files.extend(p for p in found if p.name != "thresholds.yaml")
    cases = []
    for file in files:
        suite = load_suite(file)
        if suite.applies_to(model):
            cases.extend((suite, case) for case in suite.cases if not case.skip)
    return tuple(cases)


def measured_from(run_id: int, run: RunRecord, model: str, card: str) -> Measured | None:
    """The figures the estimate needs, from one run, or None when it did not measure this model on this card."""
    record = next((m for m in run.models if m.model == model and m.card == card), None)
    cases = run.cases_of(model)
    if record is None or not cases:
        return None
    ttft, tpot = _batch1(cases, "ttft_ms"), _batch1(cases, "tpot_ms")
    tokens = [value for case in cases for value in case.samples("output_tokens")]
    if not ttft or not tpot or not tokens:
        return None
    by_case = {
        (case.suite, case.case): statistics.fmean(values) for case in cases if (values := case.samples("output_tokens"))
    }
    rates = {}
    if "answer_tokens_per_s" in record.metrics:
        rates[int(record.metrics.get("answer_concurrency", 1))] = record.metrics["answer_tokens_per_s"]
    phases = sum(m.metrics.get(name, 0.0) for m in run.models for name, _ in PHASES)
    return Measured(
        run_id=run_id, ttft_ms=statistics.median(ttft), tpot_ms=statistics.median(tpot),
        tokens_per_answer=statistics.fmean(tokens), tokens_by_case=by_case, answer_tokens_per_s=rates,
        load_s=record.metrics.get("load_s", 0.0), warmup_s=record.metrics.get("warmup_s", 0.0),
        other_s=max(run.finished_at - run.started_at - phases, 0.0),
    )  # fmt: skip


def _batch1(cases: list[CaseRecord], metric: str) -> list[float]:
    return [value for case in cases for value in case.samples(metric)]  # samples() leaves out concurrent timings


def estimate(request: PlanRequest, measured: Measured, concurrency: int) -> Estimate | None:
    """The gate's duration at ``concurrency``, or None when no run measured the answer pass at it."""

    def seconds(tokens: float) -> float:  # one generation alone at batch 1
        return (measured.ttft_ms + max(tokens - 1, 0) * measured.tpot_ms) / 1000.0

    latency, answer_tokens, alone = 0.0, 0.0, 0.0
    for suite, case in request.cases:
        tokens = min(measured.tokens_by_case.get((suite.name, case.id), measured.tokens_per_answer), case.max_new_tokens)
        repeats = request.repeats or case.repeats
        alone += repeats * seconds(tokens)
        sampled, cap_or_none = request.latency.latency_for(suite)
        sampled, cap = min(sampled, repeats), cap_or_none or case.max_new_tokens
        latency += sampled * seconds(min(tokens, cap))
        answer_tokens += (repeats - sampled) * tokens + (sampled * tokens if tokens > cap else 0)
    fixed = (("load", measured.load_s), ("warm-up", measured.warmup_s))
    other = (("start-up, judging, recording", measured.other_s),)
    if concurrency == 1:
        return Estimate(1, (*fixed, ("generations one by one", alone), *other))
    rate = measured.answer_tokens_per_s.get(concurrency)
    if rate is None:
        return None
    return Estimate(concurrency, (*fixed, ("latency sample", latency), ("answer pass", answer_tokens / rate), *other))


def plan_lines(request: PlanRequest, history_runs: Sequence[tuple[int, RunRecord]], card: str) -> list[str]:
    """The plan as printed: what it rests on, then one line per concurrency."""
    found = [m for run_id, run in history_runs if (m := measured_from(run_id, run, request.model, card)) is not None]
    repeats = sum(request.repeats or case.repeats for _, case in request.cases)
    head = f"mathperf plan: {len(request.cases)} cases, {repeats} generations of {request.model} on {card!r}"
    if not found:
        return [head, f"  no run of {request.model} on {card!r} in the history yet: run the gate once, then plan"]
    newest = found[0]
    rates = {n: r for m in reversed(found) for n, r in m.answer_tokens_per_s.items()}  # newer runs win
    newest = replace(newest, answer_tokens_per_s=rates)
    lines = [
        head,
        f"  from run {newest.run_id}: {newest.tokens_per_answer:.0f} tokens per answer, TTFT {newest.ttft_ms:.0f} ms and "
        f"TPOT {newest.tpot_ms:.1f} ms at batch 1"
        + "".join(f"; {rate:.0f} tok/s at concurrency {n}" for n, rate in sorted(rates.items())),
    ]
    for concurrency in request.concurrencies:
        result = estimate(request, newest, concurrency)
        lines.append(
            f"  {result.text()}" if result is not None
            else f"  concurrency {concurrency:>3}: not measured on {card!r} yet (run the gate once with --mathperf-concurrency {concurrency})"
        )  # fmt: skip
    return lines


def add_plan_parser(commands: Any) -> None:
    """The ``mathperf plan`` subcommand's arguments (``commands``: argparse's subparsers)."""
    plan = commands.add_parser("plan", help="estimate the gate's duration per model and concurrency from the history")
    plan.add_argument("paths", nargs="*", type=Path, help="suite files or folders (default: suites)")
    plan.add_argument("--model", action="append", required=True, help="model (as --mathperf-model); repeatable")
    plan.add_argument("--history", default=".mathperf/history.db", help="the run history (file or postgresql:// URL)")
    plan.add_argument("--card", help="card name as thresholds.yaml spells it (default: the detected one)")
    plan.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="concurrencies to estimate (default 1 16)")
    plan.add_argument("--repeats", type=int, help="as --mathperf-repeats")
    plan.add_argument("--latency-repeats", type=int, help="as --mathperf-latency-repeats")
    plan.add_argument("--latency-tokens", type=int, help="as --mathperf-latency-tokens")


def plan_command(args: argparse.Namespace) -> int:
    """Print the plan for each model; exit 1 when the suites or the history cannot be read."""
    import sys

    from pytest_mathperf.history import History, HistoryError
    from pytest_mathperf.yamlfile import SchemaError

    card = args.card or _detected_card()
    try:
        with History(args.history) as history:
            ids = sorted(history.run_ids(include_incomplete=False), reverse=True)[:RUNS_SEARCHED]
            runs = [(run_id, history.run(run_id)) for run_id in ids]
    except HistoryError as error:
        print(f"mathperf plan: --history: {error}", file=sys.stderr)
        return 1
    for model in args.model:
        try:
            cases = suite_cases(args.paths or [Path("suites")], model)
        except SchemaError as error:
            print(f"mathperf plan: {error}", file=sys.stderr)
            return 1
        request = PlanRequest(
            model=model, cases=cases, repeats=args.repeats, concurrencies=tuple(args.concurrency),
            latency=PassSettings(latency_repeats=args.latency_repeats, latency_tokens=args.latency_tokens),
        )  # fmt: skip
        print("\n".join(plan_lines(request, runs, card)))
    return 0


def _detected_card() -> str:
    from pytest_mathperf.devices import describe_first_card

    return describe_first_card().card
