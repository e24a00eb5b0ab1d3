"""pytest-html columns for the gate: verdicts, answers and key metrics of cases; measured against bound of budgets and comparisons.

Registered only when pytest-html is installed, which the gate never requires. pytest-html renders
each row as its report arrives, so the columns are the item's own verdict from the run's view
(``outputs/view.py``: the same verdict, generation and statistics as every other surface), made
from the records the item carries, never read back from its JUnit properties. They ride on the
report as plain strings, so they reach the controller's HTML report under pytest-xdist too. Every
value is escaped: the report puts cells into the page as HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from pytest_mathperf.outputs.view import budget_verdict, case_verdict, comparison_verdict
from pytest_mathperf.reporting import PROPERTY_OUTPUT_CHARS
from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord

#: The gate's columns, after pytest-html's "Test" column: (key, title).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mathperf_verdict", "Verdict"),
    ("mathperf_expected", "Expected"),
    ("mathperf_extracted", "Extracted"),
    ("mathperf_ttft", "TTFT p50"),
    ("mathperf_tokens", "tokens/s"),
    ("mathperf_measured", "Measured"),
    ("mathperf_bound", "Budget"),
)
#: Where the columns go: after pytest-html's Result and Test columns.
INSERT_AT = 2


def column_values(payload: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The gate's column values of one item and the model output to attach, from the records it carries."""
    if "case" in payload:
        case = case_verdict(CaseRecord.from_dict(payload["case"]))
        values = {
            "mathperf_verdict": f"{case.verdict} ({case.correct_text} correct)",
            "mathperf_expected": case.expected,
            "mathperf_extracted": case.shown.extracted or "(nothing)",
            "mathperf_ttft": case.ttft,
            "mathperf_tokens": case.tokens_per_s,
        }
        return values, case.shown.output
    if "budget" in payload:
        budget = budget_verdict(BudgetRecord.from_dict(payload["budget"]))
        return {"mathperf_verdict": budget.verdict, "mathperf_measured": budget.measured, "mathperf_bound": budget.bound}, ""
    if "comparison" in payload:
        comparison = comparison_verdict(ComparisonRecord.from_dict(payload["comparison"]))
        what = "drop " if comparison.metric == "accuracy" else "ratio "
        measured = what + comparison.estimate if comparison.estimate != "–" else "–"
        return {"mathperf_verdict": comparison.verdict, "mathperf_measured": measured, "mathperf_bound": comparison.margin}, ""
    return {}, ""


def header_cells() -> list[str]:
    return [f'<th class="sortable" data-column-type="{key}">{html.escape(title)}</th>' for key, title in COLUMNS]


def row_cells(values: dict[str, str]) -> list[str]:
    return [f'<td class="col-{key}">{html.escape(values.get(key, ""))}</td>' for key, _ in COLUMNS]


class PytestHtmlColumns:
    """pytest-html's table hooks and extras for the gate's items."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        report = yield
        payload = getattr(item, "mathperf_payload", None)
        if call.when == "call" and payload:
            values, output = column_values(payload)
            if values:
                report.mathperf_html = values  # plain strings: travel from xdist workers with the report
                if output:
                    from pytest_html import extras

                    report.extras = [*getattr(report, "extras", []), extras.text(output[-PROPERTY_OUTPUT_CHARS:], name="model output")]
        return report

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[INSERT_AT:INSERT_AT] = header_cells()

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if not cells:  # another plugin dropped this row
            return
        cells[INSERT_AT:INSERT_AT] = row_cells(getattr(report, "mathperf_html", {}))
