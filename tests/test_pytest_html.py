"""The gate's columns in pytest-html's report, with the real plugin, read back from the written HTML."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import pytest
from conftest import ARITHMETIC_SUITE, write

HOSTILE_OUTPUT = "<think>705 + 583</think>\\boxed{<script>alert(1)</script>}"
THRESHOLDS = """
version: 1
cards:
  cpu:
    models:
      mathperf-tiny:
        ttft_ms: {p50: {max: 0.0001}}
        tokens_per_s: {mean: {min: 1}}
"""
MATHPERF_COLUMNS = ["Verdict", "Expected", "Extracted", "TTFT p50", "tokens/s", "Measured", "Budget"]


class Report(HTMLParser):
    """pytest-html's page: the table's header cells, and the rows it renders from its JSON data."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.header: list[str] = []
        self._in_header_cell = False
        self.data: dict = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "data-jsonblob" in values:
            self.data = json.loads(values["data-jsonblob"] or "{}")
        if tag == "th":
            self._in_header_cell = True
            self.header.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "th":
            self._in_header_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_header_cell:
            self.header[-1] += data

    def row(self, nodeid: str) -> dict:
        (test,) = self.data["tests"][nodeid]
        return test

    def cells(self, nodeid: str) -> dict[str, str]:
        """The row's cells as text, by column title: what the browser shows."""
        texts = [Cell(html).text for html in self.row(nodeid)["resultsTableRow"]]
        assert len(texts) == len(self.header), "every row has a cell per column"
        return dict(zip(self.header, texts))


class Cell(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.text = ""
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def html_report(pytester: pytest.Pytester) -> Report:
    return Report((pytester.path / "report.html").read_text(encoding="utf-8"))


def test_cases_and_budgets_get_their_verdict_answers_metrics_and_bounds(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", THRESHOLDS)
    write(pytester, "test_plain.py", "def test_plain():\n    pass\n")
    run = run_scripted("--html=report.html", "--self-contained-html", "suites", "test_plain.py", scripts={"*": {"answers": {"705": HOSTILE_OUTPUT}}})
    run.result.assert_outcomes(passed=4, failed=2)
    report = html_report(pytester)

    assert report.header[:2] == ["Result", "Test"]
    assert report.header[2:9] == MATHPERF_COLUMNS

    wrong = report.cells("suites/arithmetic.yaml::add[mathperf-tiny]")
    assert wrong["Verdict"] == "wrong (0/1 correct)"
    assert wrong["Expected"] == "1288"
    assert wrong["Extracted"] == "<script>alert(1)</script>"  # shown as text …
    assert all(Cell(html).tags == ["td"] for html in report.row("suites/arithmetic.yaml::add[mathperf-tiny]")["resultsTableRow"][2:9])
    assert wrong["TTFT p50"] == "5.00 ms"
    assert wrong["tokens/s"] == "240 tok/s"  # 12 tokens in 50 ms
    assert wrong["Measured"] == wrong["Budget"] == ""
    (output,) = [extra for extra in report.row("suites/arithmetic.yaml::add[mathperf-tiny]")["extras"] if extra["name"] == "model output"]
    assert base64.b64decode(output["content"].rpartition(",")[2]).decode() == HOSTILE_OUTPUT

    right = report.cells("suites/arithmetic.yaml::sub[mathperf-tiny]")
    assert (right["Verdict"], right["Expected"], right["Extracted"]) == ("correct (1/1 correct)", "-384", "-384")

    failed = report.cells("thresholds.yaml::mathperf-tiny::ttft_ms.p50")
    assert (failed["Verdict"], failed["Measured"], failed["Budget"]) == ("failed", "5.00 ms", "≤ 0.0001 ms")
    assert failed["Expected"] == failed["TTFT p50"] == ""
    passed = report.cells("thresholds.yaml::mathperf-tiny::tokens_per_s.mean")
    assert (passed["Verdict"], passed["Measured"], passed["Budget"]) == ("passed", "240 tok/s", "≥ 1 tok/s")

    plain = report.cells("test_plain.py::test_plain")
    assert plain["Result"] == "Passed" and all(plain[title] == "" for title in MATHPERF_COLUMNS)


def test_the_columns_are_filled_under_xdist(pytester, run_scripted) -> None:
    pytest.importorskip("xdist")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 51", "answer: 52"))
    write(pytester, "answers-only.yaml", "version: 1\n")
    run = run_scripted("-n", "2", "--mathperf-thresholds", "answers-only.yaml", "--html=report.html", "--self-contained-html")
    run.result.assert_outcomes(passed=2, failed=1)
    report = html_report(pytester)
    wrong = report.cells("suites/arithmetic.yaml::sub-en[mathperf-tiny]")
    assert (wrong["Verdict"], wrong["Expected"], wrong["Extracted"]) == ("wrong (0/1 correct)", "52", "51")
    assert wrong["TTFT p50"] == "5.00 ms"
    assert any(extra["name"] == "model output" for extra in report.row("suites/arithmetic.yaml::sub-en[mathperf-tiny]")["extras"])


def test_the_gate_runs_without_pytest_html(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("-p", "no:html", "-p", "no:html_fixtures")
    run.result.assert_outcomes(passed=3)
    assert "PluginValidationError" not in run.output + run.result.stderr.str()


def test_a_comparison_shows_its_ratio_with_the_interval_against_its_margin(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", "suite: arithmetic\ncases:\n" + "".join(
        f"  - id: c{i}\n    prompt: \"What is {100 + i} + {7 * i}?\"\n    answer: {100 + 8 * i}\n" for i in range(12)
    ))
    write(pytester, "thresholds.yaml", 'version: 1\ncards:\n  cpu:\n    models:\n      "*":\n        compare:\n          ttft_ms: {p50: {max_ratio: 1.25}}\n')
    jitter = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9]
    scripts = {"base": {"ttft_ms": jitter}, "slow": {"ttft_ms": [3 * t for t in jitter]}}
    run = run_scripted("--html=report.html", "--self-contained-html", scripts=scripts, models=("base", "slow"))
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    (nodeid,) = [nodeid for nodeid in html_report(pytester).data["tests"] if nodeid.endswith("slow::compare::ttft_ms.p50")]
    cells = html_report(pytester).cells(nodeid)
    assert cells["Verdict"] == "regression" and cells["Budget"] == "ratio ≤ 1.25"
    what, ratio, low, high = cells["Measured"].split()
    assert what == "ratio" and 2.9 < float(ratio.strip("×")) < 3.1 and float(low.strip("[×,")) > 1.25 and high.endswith("×]")
