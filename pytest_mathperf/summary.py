"""The terminal summary: one table per run, models side by side as columns, like the seed's tables.

Rendered from the run's view (``outputs/view.py``): the rows, statistics, verdicts and the
generation shown for each failure are the view's, the same as every other surface shows.
"""

from __future__ import annotations

from pytest_mathperf.judge import NO_BUDGET_EFFECT, BudgetPlan
from pytest_mathperf.outputs.view import IDENTITY_ROWS, Row, RunView


def summary_lines(view: RunView) -> list[str]:
    """The table, then one line per budget and comparison not passed and per case not answered correctly."""
    from pytest_mathperf.timeline import time_to_verdict_lines

    lines = table_lines([row for row in view.table if row.key not in IDENTITY_ROWS]) + time_to_verdict_lines(view.record)
    for model in view.models:
        if model.load_error:
            lines.append(f"NOT LOADED {model.model}: {model.load_error}")
    for model in view.models:
        if model.memory_note:
            lines.append(f"memory of {model.model}: {model.memory_note}")
        if model.host_busy:
            lines.append(f"HOST BUSY while {model.model} was measured: {model.host_busy}")
    for budget in view.budgets:
        if budget.verdict != "passed":
            why = f": {budget.reason}" if budget.reason else ""
            lines.append(f"{budget.verdict.upper()} budget {budget.nodeid}: {budget.measured} (budget {budget.bound}, {budget.samples} samples){why}")
    if view.comparisons:
        lines.extend(comparison_lines(view))
    for case in view.cases:
        if not case.passed:
            lines.append(
                f"{case.verdict.upper()} {case.nodeid}: expected {case.expected}, "
                f"extracted {case.shown.extracted or 'nothing'} ({case.correct_text} correct)"
            )
    lines.extend(view.plan_lines)
    lines.append(f"mathperf: verdicts: {view.counts.text()}" + (f" · {view.headline}" if view.headline else ""))
    return lines


def comparison_lines(view: RunView) -> list[str]:
    """The comparison block: metric, baseline, candidate, ratio (or drop) with its interval, verdict."""
    rows = [["comparison", "candidate", "baseline", "value", "baseline value", "ratio / drop [interval]", "margin", "verdict"]]
    for record in view.comparisons:
        rows.append(
            [
                record.title, record.model, record.baseline, record.candidate_value, record.baseline_value,
                record.estimate, record.margin, record.verdict.upper().replace("_", " "),
            ]
        )
    lines = [""] + _table(rows)
    lines += [f"  {record.name} of {record.model}: {record.reason}" for record in view.comparisons if record.reason]
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


def table_lines(rows: list[Row]) -> list[str]:
    return _table([[row.label, *row.values] for row in rows])


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
