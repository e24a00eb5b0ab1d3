"""pytest-html columns for the gate: verdicts, answers and key metrics of cases; measured against bound of budgets and comparisons.

Registered only when pytest-html is installed, which the gate never requires. The values are read
from the item's JUnit properties when its report is made and ride on the report as plain strings,
so they reach the controller's HTML report under pytest-xdist too. Every value is escaped: the
report puts cells into the page as HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from pytest_mathperf.metrics import METRICS, format_value

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


def column_values(properties: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """The gate's column values of one item, from its JUnit properties; empty for other tests."""
    found = {name: value for name, value in properties}
    if "mathperf.verdict" not in found:
        return {}
    verdict = str(found["mathperf.verdict"])
    values = {"mathperf_verdict": verdict + (f" ({found['mathperf.correct']} correct)" if "mathperf.correct" in found else "")}
    if "mathperf.expected" in found:
        values["mathperf_expected"] = str(found["mathperf.expected"])
        values["mathperf_extracted"] = str(found.get("mathperf.extracted") or "(nothing)")
    for key, metric in (("mathperf_ttft", "ttft_ms"), ("mathperf_tokens", "tokens_per_s")):
        if isinstance(found.get(metric), (int, float)):
            values[key] = format_value(metric, found[metric])
    if "mathperf.budget" in found:
        measured = found.get("mathperf.measured")
        values["mathperf_measured"] = (
            format_value(_budget_metric(str(found["mathperf.budget"])), measured)
            if isinstance(measured, (int, float))
            else "nothing measured"
        )
        values["mathperf_bound"] = str(found.get("mathperf.bound", ""))
    if "mathperf.comparison" in found:
        values["mathperf_measured"] = _comparison_estimate(found)
        values["mathperf_bound"] = str(found.get("mathperf.margin", ""))
    return values


def _comparison_estimate(found: dict[str, Any]) -> str:
    """The ratio (or accuracy drop) with its interval, spelled as the terminal spells it."""
    is_drop = "mathperf.drop" in found
    estimate = found.get("mathperf.drop" if is_drop else "mathperf.ratio")
    if not isinstance(estimate, (int, float)):
        return "–"

    def shown(value: float) -> str:
        return f"{value:+.1%}" if is_drop else f"{value:.2f}×"

    low, high = found.get("mathperf.ci_low"), found.get("mathperf.ci_high")
    interval = f" [{shown(low)}, {shown(high)}]" if isinstance(low, (int, float)) and isinstance(high, (int, float)) else ""
    return ("drop " if is_drop else "ratio ") + shown(estimate) + interval


def _budget_metric(name: str) -> str:
    """``ttft_ms.p50`` → ``ttft_ms``; ``load.e2e_ms.p95`` → ``load.e2e_ms``; ``accuracy`` stays."""
    return name if name in METRICS else name.rpartition(".")[0]


def header_cells() -> list[str]:
    return [f'<th class="sortable" data-column-type="{key}">{html.escape(title)}</th>' for key, title in COLUMNS]


def row_cells(values: dict[str, str]) -> list[str]:
    return [f'<td class="col-{key}">{html.escape(values.get(key, ""))}</td>' for key, _ in COLUMNS]


class PytestHtmlColumns:
    """pytest-html's table hooks and extras for the gate's items."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        report = yield
        if call.when == "call":
            values = column_values(item.user_properties)
            if values:
                report.mathperf_html = values  # plain strings: travel from xdist workers with the report
                output = dict(item.user_properties).get("mathperf.output")
                if output:
                    from pytest_html import extras

                    report.extras = [*getattr(report, "extras", []), extras.text(str(output), name="model output")]
        return report

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[INSERT_AT:INSERT_AT] = header_cells()

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        if not cells:  # another plugin dropped this row
            return
        cells[INSERT_AT:INSERT_AT] = row_cells(getattr(report, "mathperf_html", {}))
