"""The terminal summary: one table per run, models side by side as columns, like the seed's tables."""

from __future__ import annotations

from pytest_mathperf.metrics import wilson_interval
from pytest_mathperf.results import RunRecord, summary_statistic

#: (row label, metric, statistic, format) for per-generation metrics.
GENERATION_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("TTFT p50 (ms)", "ttft_ms", "p50", "{:.1f}"),
    ("TTFT p95 (ms)", "ttft_ms", "p95", "{:.1f}"),
    ("TTFAT p50 (ms)", "ttfat_ms", "p50", "{:.1f}"),
    ("TPOT p50 (ms)", "tpot_ms", "p50", "{:.2f}"),
    ("tokens/s mean", "tokens_per_s", "mean", "{:.1f}"),
    ("decode tokens/s p50", "decode_tokens_per_s", "p50", "{:.1f}"),
    ("output tokens mean", "output_tokens", "mean", "{:.1f}"),
    ("reasoning tokens mean", "reasoning_tokens", "mean", "{:.1f}"),
)
MODEL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("load (s)", "load_s", "{:.2f}"),
    ("VRAM after load (GB)", "vram_load_gb", "{:.2f}"),
    ("VRAM peak (GB)", "vram_peak_gb", "{:.2f}"),
    ("RSS after load (GB)", "rss_load_gb", "{:.2f}"),
    ("RSS peak (GB)", "rss_peak_gb", "{:.2f}"),
    ("load: success rate", "load.success_rate", "{:.1%}"),
    ("load: e2e p50 (ms)", "load.e2e_ms.p50", "{:.1f}"),
    ("load: e2e p95 (ms)", "load.e2e_ms.p95", "{:.1f}"),
    ("load: TTFT p95 (ms)", "load.ttft_ms.p95", "{:.1f}"),
    ("load: requests/s", "load.requests_per_s", "{:.2f}"),
    ("load: tokens/s", "load.tokens_per_s", "{:.1f}"),
)


def summary_lines(run: RunRecord, card: str) -> list[str]:
    """The table, then one line per failed budget and per case that was not answered correctly."""
    models = [record.model for record in run.models] or sorted({case.model for case in run.cases})
    rows: list[list[str]] = [["", *models]]
    rows.append(["card", *[card for _ in models]])
    by_model = {record.model: record for record in run.models}
    for label, metric, template in MODEL_ROWS:
        values = [by_model[m].metrics.get(metric) if m in by_model else None for m in models]
        if any(value is not None for value in values):
            rows.append([label, *["–" if v is None else template.format(v) for v in values]])
    for label, metric, stat, template in GENERATION_ROWS:
        values = [summary_statistic(run.cases_of(model), metric, stat) for model in models]
        if any(value is not None for value in values):
            rows.append([label, *["–" if v is None else template.format(v) for v in values]])
    suites = sorted({case.suite for case in run.cases})
    for suite in suites:
        rows.append([f"accuracy {suite}", *[_accuracy(run, model, suite) for model in models]])
    if len(suites) > 1:
        rows.append(["accuracy (all)", *[_accuracy(run, model, None) for model in models]])
    if run.budgets:
        rows.append(["budgets", *[_budgets(run, model) for model in models]])
    lines = _table(rows)
    for record in run.models:
        if record.load_error:
            lines.append(f"NOT LOADED {record.model}: {record.load_error}")
    for budget in run.budgets:
        if not budget.passed:
            measured = "nothing measured" if budget.measured is None else f"{budget.measured:.4g}"
            bound = " and ".join(
                part
                for part in (
                    f"≥ {budget.minimum:g}" if budget.minimum is not None else "",
                    f"≤ {budget.maximum:g}" if budget.maximum is not None else "",
                )
                if part
            )
            lines.append(f"FAILED budget {budget.nodeid}: {measured} (budget {bound}, {budget.samples} samples)")
    for case in run.cases:
        if not case.passed:
            shown = next(g for g in case.generations if g.status != "correct")
            lines.append(
                f"{case.verdict.upper()} {case.nodeid}: expected {case.expected}, "
                f"extracted {shown.extracted or 'nothing'} ({case.correct_count}/{len(case.generations)} correct)"
            )
    return lines


def _accuracy(run: RunRecord, model: str, suite: str | None) -> str:
    cases = [case for case in run.cases_of(model) if suite is None or case.suite == suite]
    if not cases:
        return "–"
    share = wilson_interval(sum(1 for case in cases if case.passed), len(cases))
    return f"{share.value:.0%} ({share.successes}/{share.total}, CI {share.low:.0%}–{share.high:.0%})"


def _budgets(run: RunRecord, model: str) -> str:
    budgets = [budget for budget in run.budgets if budget.model == model]
    failed = sum(1 for budget in budgets if not budget.passed)
    return f"{len(budgets) - failed} passed, {failed} failed" if budgets else "–"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
