"""The gate's verdict as Markdown, for where CI users look: a GitHub step summary, a PR or MR comment.

A pure function of the run's record, so the file is the same wherever it goes. Short on purpose:
the models side by side, then only what needs a person (budgets and comparisons that did not
pass, wrong answers, models nothing judged, a busy host). Every text that comes from a model, a
suite or a file is escaped, so an output holding ``|``, backticks or ``<script>`` stays text in
its table cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_mathperf.judge import BudgetPlan
from pytest_mathperf.metrics import format_value
from pytest_mathperf.reporting import estimate_text, shown_generation, value_text
from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord, RunRecord
from pytest_mathperf.summary import budget_plan_lines, summary_rows
from pytest_mathperf.thresholds import bound_text

#: The per-model rows of the table: load, memory and the served model's load profile.
MODEL_ROWS: tuple[str, ...] = (
    "load_s",
    "vram_peak_gb",
    "rss_peak_gb",
    "load.success_rate",
    "load.e2e_ms.p95",
    "load.requests_per_s",
)
#: The per-generation rows: latency and speed.
GENERATION_ROWS: tuple[tuple[str, str], ...] = (("ttft_ms", "p50"), ("ttft_ms", "p95"), ("tokens_per_s", "mean"))
#: Wrong answers listed before "and N more": enough to see a pattern, few enough for one screen.
MAX_WRONG_ANSWERS = 10
#: Longest expected or extracted answer shown in a cell.
MAX_CELL_CHARS = 80

# Characters that Markdown or GitHub's table syntax would interpret; "<", ">" and "&" become
# entities so that no renderer ever sees a tag.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def escape(text: str) -> str:
    """``text`` as literal Markdown on one line, e.g. in a table cell."""
    flat = "".join(_ENTITIES.get(char, char) for char in " ".join(str(text).split()))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def markdown_summary(
    run: RunRecord,
    card: str,
    plan: BudgetPlan | None = None,
    *,
    gate_passed: bool | None = None,
    html_report: str | None = None,
    html_in_artifacts: bool = True,
) -> str:
    """The run as one Markdown document: a headline, the models side by side, what did not pass.

    ``gate_passed`` is the session's outcome (None leaves the headline without a verdict);
    ``html_report`` names the HTML report's file, which CI keeps as an artifact (``html_in_artifacts``:
    a run in a GitHub job); outside one it is the path the report was written to.
    """
    verdict = "" if gate_passed is None else (" passed" if gate_passed else " FAILED")
    blocks = [f"### mathperf gate{verdict} on {escape(card)}", _table(summary_rows(run, card, MODEL_ROWS, GENERATION_ROWS))]
    blocks.extend(_budgets(run.budgets))
    blocks.extend(_comparisons(run.comparisons))
    blocks.extend(_wrong_answers(run.cases))
    notes = [f"NOT LOADED {record.model}: {record.load_error}" for record in run.models if record.load_error]
    if plan is not None:
        unjudged = {model: entry for model, entry in plan.models.items() if entry.no_budget_reason is not None}
        notes += [line.removeprefix("mathperf: ") for line in budget_plan_lines(BudgetPlan(unjudged, plan.policy), card)]
    notes += [
        f"HOST BUSY while {record.model} was measured: {record.details['host_busy']}"
        for record in run.models
        if record.details.get("host_busy")
    ]
    if notes:
        blocks.append("\n".join(f"- {escape(note)}" for note in notes))
    if html_report:
        where = "is in the job's artifacts as" if html_in_artifacts else "was written to"
        blocks.append(f"The HTML trend report {where} {escape(html_report)}.")
    return "\n\n".join(blocks) + "\n"


def _budgets(budgets: Sequence[BudgetRecord]) -> list[str]:
    shown = [budget for budget in budgets if budget.verdict != "passed"]
    if not shown:
        return []
    rows = [["model", "budget", "verdict", "measured", "bound", "samples", "why"]]
    for budget in shown:
        measured = "nothing measured" if budget.measured is None else format_value(budget.metric, budget.measured)
        rows.append([
            budget.model,
            _budget_name(budget),
            budget.verdict,
            measured,
            bound_text(budget.metric, budget.minimum, budget.maximum),
            str(budget.samples),
            budget.reason or "–",
        ])
    return [f"**Budgets not passed ({len(shown)} of {len(budgets)})**", _table(rows)]


def _budget_name(budget: BudgetRecord) -> str:
    if budget.scope == "case" and budget.case:
        return f"{budget.name} (case {budget.suite}::{budget.case})"
    if budget.scope in ("suite", "load") and budget.suite:
        return f"{budget.name} (suite {budget.suite})"
    return budget.name


def _comparisons(comparisons: Sequence[ComparisonRecord]) -> list[str]:
    shown = [comparison for comparison in comparisons if comparison.verdict != "within_margin"]
    if not shown:
        return []
    rows = [["candidate", "baseline", "comparison", "verdict", "estimate [interval]", "margin", "candidate vs baseline", "why"]]
    for comparison in shown:
        name = comparison.name + (f" (suite {comparison.suite})" if comparison.suite else "")
        values = " vs ".join(value_text(comparison, value) for value in (comparison.candidate_value, comparison.baseline_value))
        rows.append([
            comparison.model,
            comparison.baseline,
            name,
            comparison.verdict,
            estimate_text(comparison),
            comparison.margin,
            values,
            comparison.reason or "–",
        ])
    return [f"**Comparisons not within their margin ({len(shown)} of {len(comparisons)})**", _table(rows)]


def _wrong_answers(cases: Sequence[CaseRecord]) -> list[str]:
    """Cases not answered correctly (or with a failed generation), the first few as a table."""
    shown = [case for case in cases if not case.passed or case.failed_generations]
    if not shown:
        return []
    rows = [["model", "case", "verdict", "expected", "extracted", "correct"]]
    for case in shown[:MAX_WRONG_ANSWERS]:
        generation = shown_generation(case)
        extracted = generation.extracted or f"nothing ({generation.reason})"
        verdict = case.verdict if not case.passed else generation.status
        rows.append([
            case.model,
            f"{case.suite}::{case.case}",
            verdict,
            _cut(case.expected),
            _cut(extracted),
            f"{case.correct_count}/{len(case.generations)}",
        ])
    blocks = [f"**Wrong answers ({len(shown)} of {len(cases)} cases)**", _table(rows)]
    if len(shown) > MAX_WRONG_ANSWERS:
        more = len(shown) - MAX_WRONG_ANSWERS
        blocks.append(f"… and {more} more: each one is in the JUnit report, with its raw output.")
    return blocks


def _cut(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_CELL_CHARS else flat[: MAX_CELL_CHARS - 1] + "…"


def _table(rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first row is the header."""
    header, *body = rows
    lines = ["| " + " | ".join(escape(cell) for cell in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(escape(cell) or "–" for cell in row) + " |" for row in body]
    return "\n".join(lines)
