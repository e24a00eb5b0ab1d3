"""The terminal summary: one table per run, models side by side as columns, like the seed's tables."""

from __future__ import annotations

from pytest_mathperf.judge import NO_BUDGET_EFFECT, BudgetPlan
from pytest_mathperf.metrics import format_value, title_of, unit_of, wilson_interval
from pytest_mathperf.reporting import estimate_text, shown_generation, value_text
from pytest_mathperf.results import RunRecord, summary_statistic
from pytest_mathperf.thresholds import bound_text

#: (metric, statistic) rows for per-generation metrics; titles and formats come from the registry.
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
MODEL_ROWS: tuple[str, ...] = (
    "load_s",
    "warmup_s",
    "latency_sample_s",
    "answer_pass_s",
    "answer_tokens_per_s",
    "answer_concurrency",
    "vram_load_gb",
    "vram_load_peak_gb",
    "vram_peak_gb",
    "rss_load_gb",
    "rss_peak_gb",
    "load.success_rate",
    "load.e2e_ms.p50",
    "load.e2e_ms.p95",
    "load.ttft_ms.p95",
    "load.requests_per_s",
    "load.tokens_per_s",
    "load.client_cpu_ms_per_request",
    "load.server_cpu_percent.mean",
    "load.server_cpu_percent.p95",
    "load.gpu_util_percent.mean",
    "load.gpu_power_w.mean",
)


def _label(metric: str, stat: str | None = None) -> str:
    unit = unit_of(metric)
    return f"{title_of(metric)}{' ' + stat if stat else ''}{f' ({unit})' if unit else ''}"


def summary_lines(run: RunRecord, card: str) -> list[str]:
    """The table, then one line per failed budget and per case that was not answered correctly."""
    from pytest_mathperf.timeline import time_to_verdict_lines

    lines = _table(summary_rows(run, card)) + time_to_verdict_lines(run)
    for record in run.models:
        if record.load_error:
            lines.append(f"NOT LOADED {record.model}: {record.load_error}")
    for record in run.models:
        if record.details.get("memory_note"):
            lines.append(f"memory of {record.model}: {record.details['memory_note']}")
        busy = record.details.get("host_busy")
        if busy:
            lines.append(f"HOST BUSY while {record.model} was measured: {busy}")
    for budget in run.budgets:
        if budget.verdict != "passed":
            measured = "nothing measured" if budget.measured is None else format_value(budget.metric, budget.measured)
            bound = bound_text(budget.metric, budget.minimum, budget.maximum)
            why = f": {budget.reason}" if budget.reason else ""
            lines.append(f"{budget.verdict.upper()} budget {budget.nodeid}: {measured} (budget {bound}, {budget.samples} samples){why}")
    if run.comparisons:
        lines.extend(comparison_lines(run))
    for case in run.cases:
        if not case.passed:
            shown = shown_generation(case)
            lines.append(
                f"{case.verdict.upper()} {case.nodeid}: expected {case.expected}, "
                f"extracted {shown.extracted or 'nothing'} ({case.correct_count}/{len(case.generations)} correct)"
            )
    return lines


def summary_rows(
    run: RunRecord,
    card: str,
    model_rows: tuple[str, ...] = MODEL_ROWS,
    generation_rows: tuple[tuple[str, str], ...] = GENERATION_ROWS,
) -> list[list[str]]:
    """The models side by side: a header row of model names, then one row per metric any model has."""
    models = [record.model for record in run.models] or sorted({case.model for case in run.cases})
    rows: list[list[str]] = [["", *models]]
    rows.append(["card", *[card for _ in models]])
    by_model = {record.model: record for record in run.models}
    sources = [by_model[m].memory_source if m in by_model else None for m in models]
    if any(sources):
        rows.append(["memory source", *[source or "–" for source in sources]])
    for name in model_rows:
        metric, _, stat = name.partition(".") if not name.startswith("load.") else _split_load(name)
        values = [by_model[m].metrics.get(name) if m in by_model else None for m in models]
        if any(value is not None for value in values):
            cells = ["–" if v is None else format_value(metric, v, unit=False) for v in values]
            rows.append([_label(metric, stat or None), *cells])
    for metric, stat in generation_rows:
        values = [summary_statistic(run.cases_of(model), metric, stat) for model in models]
        if any(value is not None for value in values):
            rows.append([_label(metric, stat), *["–" if v is None else format_value(metric, v, unit=False) for v in values]])
    failed = [sum(case.failed_generations for case in run.cases_of(model)) for model in models]
    if any(failed):
        rows.append(["failed generations (not in timings)", *[str(count) for count in failed]])
    suites = sorted({case.suite for case in run.cases})
    for suite in suites:
        rows.append([f"accuracy {suite}", *[_accuracy(run, model, suite) for model in models]])
    if len(suites) > 1:
        rows.append(["accuracy (all)", *[_accuracy(run, model, None) for model in models]])
    if run.budgets:
        rows.append(["budgets", *[_budgets(run, model) for model in models]])
    return rows


def comparison_lines(run: RunRecord) -> list[str]:
    """The comparison block: metric, baseline, candidate, ratio (or drop) with its interval, verdict."""
    rows = [["comparison", "candidate", "baseline", "value", "baseline value", "ratio / drop [interval]", "margin", "verdict"]]
    for record in run.comparisons:
        name = f"{record.suite}::{record.name}" if record.suite else record.name
        rows.append(
            [
                name, record.model, record.baseline, value_text(record, record.candidate_value),
                value_text(record, record.baseline_value), estimate_text(record), record.margin, record.verdict.upper().replace("_", " "),
            ]
        )
    lines = [""] + _table(rows)
    lines += [f"  {record.name} of {record.model}: {record.reason}" for record in run.comparisons if record.reason]
    return lines


def budget_plan_lines(plan: BudgetPlan, card: str) -> list[str]:
    """One line per model: how many budgets judged it on this card, or why none did and what that means."""
    lines = []
    baselines = {model_plan.baseline for model_plan in plan.models.values() if model_plan.comparisons}
    for model, model_plan in plan.models.items():
        if model_plan.no_budget_reason is None:
            count = len(model_plan.budgets)
            judged = f"mathperf: {count} budget{'s' if count != 1 else ''} applied to {model} on {card!r}"
            if model_plan.comparisons:
                judged += f", {len(model_plan.comparisons)} comparisons against {model_plan.baseline}"
            if model in baselines:
                judged += ", and it is the baseline of the comparisons"
            lines.append(judged)
        else:
            effect = NO_BUDGET_EFFECT[plan.policy]
            lines.append(f"mathperf: NO budget applied to {model} ({effect}): {model_plan.no_budget_reason}")
    return lines


def _split_load(name: str) -> tuple[str, str, str]:
    """``load.e2e_ms.p95`` → (``load.e2e_ms``, ".", ``p95``); ``load.success_rate`` has no statistic."""
    head, dot, tail = name.rpartition(".")
    if tail.startswith("p") and tail[1:].isdigit() or tail == "mean":
        return head, dot, tail
    return name, "", ""


def _accuracy(run: RunRecord, model: str, suite: str | None) -> str:
    cases = [case for case in run.cases_of(model) if suite is None or case.suite == suite]
    if not cases:
        return "–"
    share = wilson_interval(sum(1 for case in cases if case.passed), len(cases))
    return f"{share.value:.0%} ({share.successes}/{share.total}, CI {share.low:.0%}–{share.high:.0%})"


def _budgets(run: RunRecord, model: str) -> str:
    verdicts = [budget.verdict for budget in run.budgets if budget.model == model]
    if not verdicts:
        return "–"
    text = f"{verdicts.count('passed')} passed, {verdicts.count('failed')} failed"
    return text + (f", {verdicts.count('inconclusive')} inconclusive" if "inconclusive" in verdicts else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
