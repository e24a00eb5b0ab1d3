"""The gate's verdict as Markdown, for where CI users look: a GitHub step summary, a PR or MR comment.

A pure function of the run's view, so the file is the same wherever it goes. Short on purpose:
the models side by side, then only what needs a person (budgets and comparisons that did not
pass, wrong answers, models nothing judged, a busy host). Every text that comes from a model, a
suite or a file is escaped, so an output holding ``|``, backticks or ``<script>`` stays text in
its table cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_mathperf.outputs.view import BudgetVerdict, CaseVerdict, ComparisonVerdict, Row, RunView

#: The rows of the side-by-side table: the models, load, memory, the served model's load profile,
#: latency and speed, accuracy and budgets (the view's rows, so the same statistics as elsewhere).
TABLE_ROWS: tuple[str, ...] = (
    "models", "card", "memory_source", "load_s", "vram_peak_gb", "rss_peak_gb", "load.success_rate", "load.e2e_ms.p95",
    "load.requests_per_s", "ttft_ms.p50", "ttft_ms.p95", "tokens_per_s.mean", "failed_generations", "accuracy", "budgets",
)
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


def markdown_summary(view: RunView, *, html_report: str | None = None, html_in_artifacts: bool = True) -> str:
    """The run as one Markdown document: a headline, the models side by side, what did not pass.

    ``html_report`` names the HTML report's file, which CI keeps as an artifact (``html_in_artifacts``:
    a run in a GitHub job); outside one it is the path the report was written to.
    """
    verdict = "" if view.gate_passed is None else (" passed" if view.gate_passed else " FAILED")
    blocks = [f"### mathperf gate{verdict} on {escape(view.card)}"]
    if view.gate_passed is False:
        blocks.append(f"**{escape(view.headline)}**")
    rows = [row for row in view.table if row.key in TABLE_ROWS or row.key.startswith("accuracy:")]
    blocks.append(_table(_rows(rows)))
    blocks.extend(_budgets(view.budgets))
    blocks.extend(_comparisons(view.comparisons))
    blocks.extend(_wrong_answers(view.cases))
    notes = [f"NOT LOADED {model.model}: {model.load_error}" for model in view.models if model.load_error]
    notes += [line.removeprefix("mathperf: ") for line in view.plan_lines if line.startswith("mathperf: NO budget")]
    notes += [f"HOST BUSY while {model.model} was measured: {model.host_busy}" for model in view.models if model.host_busy]
    if notes:
        blocks.append("\n".join(f"- {escape(note)}" for note in notes))
    if html_report:
        where = "is in the job's artifacts as" if html_in_artifacts else "was written to"
        blocks.append(f"The HTML trend report {where} {escape(html_report)}.")
    return "\n\n".join(blocks) + "\n"


def _rows(rows: Sequence[Row]) -> list[list[str]]:
    return [[row.label, *row.values] for row in rows]


def _budgets(budgets: Sequence[BudgetVerdict]) -> list[str]:
    shown = [budget for budget in budgets if budget.verdict != "passed"]
    if not shown:
        return []
    rows = [["model", "budget", "verdict", "measured", "bound", "samples", "why"]]
    for budget in shown:
        rows.append([
            budget.model,
            _budget_name(budget),
            budget.verdict,
            budget.measured,
            budget.bound,
            str(budget.samples),
            budget.reason or "–",
        ])
    return [f"**Budgets not passed ({len(shown)} of {len(budgets)})**", _table(rows)]


def _budget_name(budget: BudgetVerdict) -> str:
    if budget.scope == "case" and budget.case:
        return f"{budget.name} (case {budget.suite}::{budget.case})"
    if budget.scope in ("suite", "load") and budget.suite:
        return f"{budget.name} (suite {budget.suite})"
    return budget.name


def _comparisons(comparisons: Sequence[ComparisonVerdict]) -> list[str]:
    shown = [comparison for comparison in comparisons if comparison.verdict != "within_margin"]
    if not shown:
        return []
    rows = [["candidate", "baseline", "comparison", "verdict", "estimate [interval]", "margin", "candidate vs baseline", "why"]]
    for comparison in shown:
        name = comparison.name + (f" (suite {comparison.suite})" if comparison.suite else "")
        values = f"{comparison.candidate_value} vs {comparison.baseline_value}"
        rows.append([
            comparison.model,
            comparison.baseline,
            name,
            comparison.verdict,
            comparison.estimate,
            comparison.margin,
            values,
            comparison.reason or "–",
        ])
    return [f"**Comparisons not within their margin ({len(shown)} of {len(comparisons)})**", _table(rows)]


def _wrong_answers(cases: Sequence[CaseVerdict]) -> list[str]:
    """Cases not answered correctly (or with a failed generation), the first few as a table."""
    shown = [case for case in cases if not case.passed or case.failed_generations]
    if not shown:
        return []
    rows = [["model", "case", "verdict", "expected", "extracted", "correct"]]
    for case in shown[:MAX_WRONG_ANSWERS]:
        generation = case.shown
        extracted = generation.extracted or f"nothing ({generation.reason})"
        verdict = case.verdict if not case.passed else generation.status
        rows.append([
            case.model,
            f"{case.suite}::{case.case}",
            verdict,
            _cut(case.expected),
            _cut(extracted),
            case.correct_text,
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
