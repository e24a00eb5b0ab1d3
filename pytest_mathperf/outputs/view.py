"""The run's verdicts, computed once: what every output surface shows, so none can say otherwise.

The terminal, the Markdown, the HTML report, the JUnit properties and pytest-html's columns all
render these values; none of them picks its own rows, statistics or generation to show, and
inconclusive is a verdict of its own everywhere, never counted as failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_mathperf.metrics import format_value, statistic, title_of, unit_of, wilson_interval
from pytest_mathperf.results import (
    BudgetRecord,
    CaseRecord,
    ComparisonRecord,
    GenerationRecord,
    RunRecord,
    summary_statistic,
)
from pytest_mathperf.thresholds import bound_text

#: The statistic each per-generation metric is shown by, on every surface (budgets name their own).
SHOWN_STATISTIC: Mapping[str, str] = {"tokens_per_s": "mean", "output_tokens": "mean", "reasoning_tokens": "mean", "retries": "max"}
#: The per-generation rows of the models-side-by-side table, in order.
GENERATION_ROWS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "p50"),
    ("ttft_ms", "p95"),
    ("ttfat_ms", "p50"),
    ("tpot_ms", "p50"),
    ("tokens_per_s", "mean"),
    ("decode_tokens_per_s", "p50"),
    ("output_tokens", "mean"),
    ("reasoning_tokens", "mean"),
    ("retries", "max"),
)
#: The per-model rows (one value per model and run), in order.
MODEL_ROWS: tuple[str, ...] = (
    "load_s", "warmup_s", "latency_sample_s", "answer_pass_s", "answer_tokens_per_s", "answer_concurrency", "vram_load_gb", "vram_load_peak_gb", "vram_peak_gb", "rss_load_gb", "rss_peak_gb",
    "load.success_rate", "load.e2e_ms.p50", "load.e2e_ms.p95", "load.ttft_ms.p95", "load.requests_per_s",
    "load.tokens_per_s", "load.client_cpu_ms_per_request", "load.server_cpu_percent.mean", "load.server_cpu_percent.p95",
    "load.gpu_util_percent.mean", "load.gpu_power_w.mean",
)
#: Rows that name what ran rather than what it measured: the HTML shows them, the terminal does not.
IDENTITY_ROWS: tuple[str, ...] = ("backend", "device", "dtype", "revision", "load_error")


def shown_statistic(metric: str) -> str:
    return SHOWN_STATISTIC.get(metric, "p50")


@dataclass(frozen=True)
class Counts:
    """Gate items by what they came to; inconclusive apart from failed and from skipped."""

    passed: int = 0
    failed: int = 0
    inconclusive: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, statuses: Iterable[str]) -> Counts:
        found = list(statuses)
        return cls(*(found.count(name) for name in ("passed", "failed", "inconclusive", "skipped")))

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.inconclusive + self.skipped

    def text(self) -> str:
        """``3 passed, 1 failed, 2 inconclusive``: passed and failed always, the others when there are any."""
        parts = [f"{self.passed} passed", f"{self.failed} failed"]
        parts += [f"{count} {name}" for name, count in (("inconclusive", self.inconclusive), ("skipped", self.skipped)) if count]
        return ", ".join(parts)


@dataclass(frozen=True)
class Row:
    """One row of the models-side-by-side table: ``key`` lets a surface choose rows without relabelling them."""

    key: str
    label: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class CaseVerdict:
    """One case × model as every surface shows it, with the one generation a failure shows."""

    nodeid: str
    model: str
    suite: str
    case: str
    prompt: str
    expected: str
    tags: tuple[str, ...]
    pass_rule: str
    verdict: str  # correct | wrong | no_answer | truncated | error
    passed: bool  # its pass rule held
    correct: int
    generations: int
    failed_generations: int
    shown: GenerationRecord
    ttft: str  # over its repeats, by SHOWN_STATISTIC
    tokens_per_s: str
    status: str  # passed | failed | skipped (left to a budget, xfail) as the gate decided it; "not known" from a history

    @property
    def correct_text(self) -> str:
        return f"{self.correct}/{self.generations}"


@dataclass(frozen=True)
class BudgetVerdict:
    nodeid: str
    model: str
    name: str
    metric: str
    scope: str
    suite: str | None
    case: str | None
    verdict: str  # passed | failed | inconclusive
    measured: str
    bound: str
    samples: int
    card: str
    reason: str
    status: str  # passed | failed | inconclusive | skipped


@dataclass(frozen=True)
class ComparisonVerdict:
    nodeid: str
    model: str
    baseline: str
    name: str
    suite: str | None
    metric: str
    verdict: str  # regression | within_margin | inconclusive
    candidate_value: str
    baseline_value: str
    estimate: str
    margin: str
    p_value: str
    samples: int
    reason: str
    status: str  # passed | failed | inconclusive (failed too under compare_defaults.inconclusive: fail)

    @property
    def title(self) -> str:
        return f"{self.suite}::{self.name}" if self.suite else self.name


@dataclass(frozen=True)
class ModelVerdict:
    """What the gate decided about one model: failed when anything of it failed, else inconclusive or passed."""

    model: str
    verdict: str  # passed | failed | inconclusive | not loaded | not judged
    budgets: Counts
    comparisons: Counts
    load_error: str | None
    host_busy: str | None
    memory_note: str | None


@dataclass(frozen=True)
class RunView:
    """Everything the surfaces show about one run, decided once after the session."""

    card: str
    record: RunRecord
    exit_status: int | None  # None when rendered from the history, not from a session
    failed_because: tuple[str, ...]  # why the gate failed (or, from a history, what failed), one phrase each
    models: tuple[ModelVerdict, ...]
    table: tuple[Row, ...]
    cases: tuple[CaseVerdict, ...]
    budgets: tuple[BudgetVerdict, ...]
    comparisons: tuple[ComparisonVerdict, ...]
    counts: Counts  # every gate item of the run
    plan_lines: tuple[str, ...] = ()  # how many budgets judged each model, or why none did
    uid: str = ""  # the run's identity in the history
    notes: tuple[str, ...] = field(default=())  # what the session has to say besides verdicts

    @property
    def gate_passed(self) -> bool | None:
        return None if self.exit_status is None else self.exit_status == 0

    @property
    def headline(self) -> str:
        """``gate FAILED (exit status 1): 2 comparisons regressed: …``, the same words on every surface."""
        if self.exit_status is None:
            return ""
        if self.exit_status == 0:
            return "gate passed"
        return f"gate FAILED (exit status {self.exit_status})" + (": " + "; ".join(self.failed_because) if self.failed_because else "")


def shown_generation(record: CaseRecord) -> GenerationRecord:
    """The generation a failure shows: a backend failure first, else the first wrong one."""
    failing = [g for g in record.generations if g.status != "correct"]
    if not failing:
        return record.generations[0]
    return next((g for g in failing if g.status == "error"), failing[0])


def estimate_text(record: ComparisonRecord) -> str:
    """``1.02× [0.98×, 1.07×]`` for a ratio, ``+2.1% [−1.0%, +6.3%]`` for an accuracy drop."""
    if record.estimate is None:
        return "–"

    def shown(value: float) -> str:
        return f"{value:+.1%}" if record.metric == "accuracy" else f"{value:.2f}×"

    interval = f" [{shown(record.low)}, {shown(record.high)}]" if record.low is not None and record.high is not None else ""
    return shown(record.estimate) + interval


def value_text(record: ComparisonRecord, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1%}" if record.metric == "accuracy" else format_value(record.metric, value)


def case_verdict(record: CaseRecord, status: str = "") -> CaseVerdict:
    """A case as shown; ``status`` is what the gate made of it (passed, failed, skipped), else its pass rule."""

    def shown_value(metric: str) -> str:
        value = summary_statistic([record], metric, shown_statistic(metric))
        return "" if value is None else format_value(metric, value)

    return CaseVerdict(
        nodeid=record.nodeid, model=record.model, suite=record.suite, case=record.case, prompt=record.prompt,
        expected=record.expected, tags=tuple(record.tags), pass_rule=record.pass_rule, verdict=record.verdict,
        passed=record.passed, correct=record.correct_count, generations=len(record.generations),
        failed_generations=record.failed_generations, shown=shown_generation(record),
        ttft=shown_value("ttft_ms"), tokens_per_s=shown_value("tokens_per_s"),
        status=status or ("passed" if record.passed else "not known"),  # a failed pass rule may have been left to a budget
    )


def budget_verdict(record: BudgetRecord, status: str = "") -> BudgetVerdict:
    verdict = record.verdict
    return BudgetVerdict(
        nodeid=record.nodeid, model=record.model, name=record.name, metric=record.metric, scope=record.scope,
        suite=record.suite, case=record.case, verdict=verdict,
        measured="nothing measured" if record.measured is None else format_value(record.metric, record.measured),
        bound=bound_text(record.metric, record.minimum, record.maximum), samples=record.samples, card=record.card,
        reason=record.reason, status=_status(verdict == "inconclusive", status, verdict),
    )


def comparison_verdict(record: ComparisonRecord, status: str = "") -> ComparisonVerdict:
    by_verdict = comparison_status(record.verdict)
    return ComparisonVerdict(
        nodeid=record.nodeid, model=record.model, baseline=record.baseline, name=record.name, suite=record.suite,
        metric=record.metric, verdict=record.verdict, candidate_value=value_text(record, record.candidate_value),
        baseline_value=value_text(record, record.baseline_value), estimate=estimate_text(record), margin=record.margin,
        p_value="–" if record.p_value is None else f"{record.p_value:.3g}", samples=record.samples, reason=record.reason,
        status=_status(record.verdict == "inconclusive", status, by_verdict),
    )


def _status(inconclusive: bool, reported: str, by_verdict: str) -> str:
    """An inconclusive verdict counts as inconclusive unless the gate failed it (a policy); else what pytest reported."""
    if inconclusive and reported != "failed":
        return "inconclusive"
    return reported or by_verdict


def build_view(
    run: RunRecord,
    card: str,
    *,
    exit_status: int | None = None,
    outcomes: Mapping[str, str] | None = None,
    plan_lines: Sequence[str] = (),
    failures: Sequence[str] = (),
    uid: str = "",
) -> RunView:
    """The view of a run. ``outcomes`` maps each gate item's node id to what pytest reported of it
    (passed | failed | skipped); ``failures`` are reasons outside the items (collection errors, the history)."""
    outcomes = dict(outcomes or {})
    cases = tuple(case_verdict(case, outcomes.get(case.nodeid, "")) for case in run.cases)
    budgets = tuple(budget_verdict(budget, outcomes.get(budget.nodeid, "")) for budget in run.budgets)
    comparisons = tuple(comparison_verdict(c, outcomes.get(c.nodeid, "")) for c in run.comparisons)
    shown = {verdict.nodeid for verdict in (*cases, *budgets, *comparisons)}
    others = [status for nodeid, status in outcomes.items() if nodeid not in shown]  # no-budget, load, load-error items
    statuses = [verdict.status for verdict in (*cases, *budgets, *comparisons)] + others
    models = tuple(_model_verdict(run, record.model, budgets, comparisons, cases) for record in run.models)
    because = _failed_because(cases, budgets, comparisons, models, others.count("failed"), failures) if exit_status != 0 else ()
    return RunView(
        card=card, record=run, exit_status=exit_status, failed_because=because, models=models,
        table=_table(run, card, budgets), cases=cases, budgets=budgets, comparisons=comparisons,
        counts=Counts.of(statuses), plan_lines=tuple(plan_lines), uid=uid,
    )


def _model_verdict(
    run: RunRecord, model: str, budgets: Sequence[BudgetVerdict], comparisons: Sequence[ComparisonVerdict], cases: Sequence[CaseVerdict]
) -> ModelVerdict:
    record = next(record for record in run.models if record.model == model)
    own_budgets = Counts.of(b.status for b in budgets if b.model == model)
    own_comparisons = Counts.of(c.status for c in comparisons if c.model == model)
    cases_failed = any(case.status == "failed" for case in cases if case.model == model)
    return ModelVerdict(
        model=model, verdict=model_verdict(record.load_error, own_budgets, own_comparisons, cases_failed), budgets=own_budgets, comparisons=own_comparisons, load_error=record.load_error,
        host_busy=record.details.get("host_busy") or None, memory_note=record.details.get("memory_note") or None,
    )


def model_verdict(load_error: str | None, budgets: Counts, comparisons: Counts, cases_failed: bool = False) -> str:
    """The one rule for a model's verdict: failed when anything of it failed, else inconclusive, passed or not judged."""
    if load_error:
        return "not loaded"
    if budgets.failed or comparisons.failed or cases_failed:
        return "failed"
    if budgets.inconclusive or comparisons.inconclusive:
        return "inconclusive"
    return "passed" if budgets.total or comparisons.total else "not judged"


def comparison_status(verdict: str) -> str:
    """A comparison's verdict as a status: a regression fails, within its margin passes."""
    return {"regression": "failed", "within_margin": "passed"}.get(verdict, verdict)


def _failed_because(
    cases: Sequence[CaseVerdict],
    budgets: Sequence[BudgetVerdict],
    comparisons: Sequence[ComparisonVerdict],
    models: Sequence[ModelVerdict],
    other_failures: int,
    failures: Sequence[str],
) -> tuple[str, ...]:
    reasons = []

    def add(what: str, names: list[str]) -> None:
        if names:
            listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            reasons.append(f"{len(names)} {what}{'' if len(names) == 1 else 's'} {'failed' if what != 'comparison' else 'regressed'}: {listed}")

    add("comparison", [f"{c.title} of {c.model}" for c in comparisons if c.status == "failed"])
    add("budget", [f"{b.name} of {b.model}" for b in budgets if b.status == "failed"])
    add("case", [f"{c.suite}::{c.case} [{c.model}]" for c in cases if c.status == "failed"])
    reasons += [f"{model.model} did not load" for model in models if model.load_error]
    if other_failures and not any(model.load_error for model in models):
        reasons.append(f"{other_failures} other gate item{'s' if other_failures != 1 else ''} failed")
    return tuple(reasons) + tuple(failures)


def _label(metric: str, stat: str | None = None) -> str:
    unit = unit_of(metric)
    return f"{title_of(metric)}{' ' + stat if stat else ''}{f' ({unit})' if unit else ''}"


def _split_load(name: str) -> tuple[str, str]:
    """``load.e2e_ms.p95`` → (``load.e2e_ms``, ``p95``); ``load_s`` and ``load.success_rate`` have no statistic."""
    if not name.startswith("load."):
        return name, ""
    head, _, tail = name.rpartition(".")
    if tail.startswith("p") and tail[1:].isdigit() or tail == "mean":
        return head, tail
    return name, ""


def _table(run: RunRecord, card: str, budgets: Sequence[BudgetVerdict]) -> tuple[Row, ...]:
    """The models side by side: a header row of model names, then one row per value any model has."""
    models = [record.model for record in run.models] or sorted({case.model for case in run.cases})
    by_model = {record.model: record for record in run.models}
    rows = [Row("models", "", tuple(models)), Row("card", "card", tuple(card for _ in models))]

    def add(key: str, label: str, values: list[str | None]) -> None:
        if any(values):
            rows.append(Row(key, label, tuple(value or "–" for value in values)))

    for name in IDENTITY_ROWS:
        add(name, name.replace("_", " "), [str(getattr(by_model[m], name) or "") if m in by_model else None for m in models])
    add("memory_source", "memory source", [by_model[m].memory_source if m in by_model else None for m in models])
    for name in MODEL_ROWS:
        metric, stat = _split_load(name)
        values = [by_model[m].metrics.get(name) if m in by_model else None for m in models]
        add(name, _label(metric, stat or None), [None if v is None else format_value(metric, v, unit=False) for v in values])
    for metric, stat in GENERATION_ROWS:
        values = [summary_statistic(run.cases_of(model), metric, stat) for model in models]
        add(f"{metric}.{stat}", _label(metric, stat), [None if v is None else format_value(metric, v, unit=False) for v in values])
    failed = [sum(case.failed_generations for case in run.cases_of(model)) for model in models]
    if any(failed):
        rows.append(Row("failed_generations", "failed generations (not in timings)", tuple(str(count) for count in failed)))
    suites = sorted({case.suite for case in run.cases})
    for suite in suites:
        rows.append(Row(f"accuracy:{suite}", f"accuracy {suite}", tuple(_accuracy(run, model, suite) for model in models)))
    if len(suites) > 1:
        rows.append(Row("accuracy", "accuracy (all)", tuple(_accuracy(run, model, None) for model in models)))
    if budgets:
        counts = [Counts.of(b.status for b in budgets if b.model == model) for model in models]
        rows.append(Row("budgets", "budgets", tuple(count.text() if count.total else "–" for count in counts)))
    return tuple(rows)


def _accuracy(run: RunRecord, model: str, suite: str | None) -> str:
    cases = [case for case in run.cases_of(model) if suite is None or case.suite == suite]
    if not cases:
        return "–"
    share = wilson_interval(sum(1 for case in cases if case.passed), len(cases))
    return f"{share.value:.0%} ({share.successes}/{share.total}, CI {share.low:.0%}–{share.high:.0%})"


def case_statistics(record: CaseRecord, metrics: Iterable[str]) -> list[tuple[str, float]]:
    """Each metric of a case over its repeats, by the statistic every surface shows it by."""
    found = []
    for metric in metrics:
        values = record.samples(metric)
        if values:
            found.append((metric, statistic(values, shown_statistic(metric))))
    return found
