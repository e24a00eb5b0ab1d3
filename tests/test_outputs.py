"""Every output surface states the same verdicts and counts as the gate's exit status.

One scripted gate with a regression, an inconclusive budget and a passed one; a surface of the
test's own, plugged in through ``pytest_mathperf_output_surfaces`` as a third party would, writes
the view it was given; the terminal, Markdown, HTML report, JUnit XML and pytest-html must say
the same.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from conftest import TWELVE_CASES, write

from pytest_mathperf.markdown import escape
from pytest_mathperf.outputs import chosen_surfaces, publish_all
from pytest_mathperf.outputs.view import RunView, build_view
from pytest_mathperf.report.html import write_report
from pytest_mathperf.results import BudgetRecord, CaseRecord, GenerationRecord, ModelRecord, RunRecord

THRESHOLDS = """
version: 1
cards:
  cpu:
    models:
      "*":
        accuracy: {min: 0.9, confidence: 0.95}
        tokens_per_s: {mean: {min: 1}}
        compare:
          ttft_ms: {p50: {max_ratio: 1.25}}
"""
#: A surface of the test's own: the view as JSON, exactly as the gate built it.
VIEW_SURFACE = '''
import json
from pathlib import Path


class ViewAsJson:
    name = "view-json"
    order = 50

    def publish(self, view):
        verdicts = {item.nodeid: item.status for item in (*view.cases, *view.budgets, *view.comparisons)}
        counts = {"passed": view.counts.passed, "failed": view.counts.failed, "inconclusive": view.counts.inconclusive, "skipped": view.counts.skipped}
        data = {"exit_status": view.exit_status, "headline": view.headline, "counts": counts, "statuses": verdicts,
                "models": {model.model: model.verdict for model in view.models}}
        Path("view.json").write_text(json.dumps(data), encoding="utf-8")
        return ["mathperf: wrote view.json"]


def pytest_mathperf_output_surfaces(config):
    return [ViewAsJson()]
'''
JITTER = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9]


class PytestHtmlRows(HTMLParser):
    """pytest-html's rows from its JSON blob: the Result and the gate's Verdict column of each node id."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.data: dict = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if "data-jsonblob" in values:
            self.data = json.loads(values["data-jsonblob"] or "{}")

    def verdicts(self) -> dict[str, str]:
        found = {}
        for nodeid, (test, *_) in self.data["tests"].items():
            cell = next(html for html in test["resultsTableRow"] if 'class="col-mathperf_verdict"' in html)
            found[nodeid] = re.sub(r"<[^>]+>", "", cell)
        return found


def test_every_surface_states_the_verdicts_and_counts_of_the_exit_status(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", THRESHOLDS)
    write(pytester, "view_surface.py", VIEW_SURFACE)
    pytester.syspathinsert()
    scripts = {"base": {"ttft_ms": JITTER}, "slow": {"ttft_ms": [3 * t for t in JITTER]}}
    run = run_scripted(
        "-p", "view_surface", "--mathperf-html=report.html", "--mathperf-markdown=summary.md",
        "--html=pytest-html.html", "--self-contained-html", scripts=scripts, models=("base", "slow"),
    )
    view = json.loads((pytester.path / "view.json").read_text(encoding="utf-8"))

    # the gate: the regression fails it; inconclusive accuracy (12 of 12 is no evidence of ≥ 90 % at 95 %) is not a failure
    assert run.result.ret == 1 == view["exit_status"]
    assert view["counts"] == {"passed": 26, "failed": 1, "inconclusive": 2, "skipped": 0}
    assert view["models"] == {"base": "inconclusive", "slow": "failed"}
    regression = next(nodeid for nodeid, status in view["statuses"].items() if status == "failed")
    assert regression.endswith("slow::compare::ttft_ms.p50")
    inconclusive = sorted(nodeid for nodeid, status in view["statuses"].items() if status == "inconclusive")
    assert [nodeid.rpartition("::")[0].rpartition("::")[2] for nodeid in inconclusive] == ["base", "slow"]
    assert all(nodeid.endswith("::accuracy") for nodeid in inconclusive)
    headline = "gate FAILED (exit status 1): 1 comparison regressed: ttft_ms.p50 of slow"
    assert view["headline"] == headline

    # pytest's own outcomes: the same counts (an inconclusive verdict is a skip with its reason)
    run.result.assert_outcomes(passed=26, failed=1, skipped=2)

    # the terminal
    run.result.stdout.fnmatch_lines(
        [
            "mathperf: 5 budget and comparison items added after selection: 29 items to run",
            "budgets * 1 passed, 0 failed, 1 inconclusive * 1 passed, 0 failed, 1 inconclusive",
            "INCONCLUSIVE budget thresholds.yaml::base::accuracy: *",
            "INCONCLUSIVE budget thresholds.yaml::slow::accuracy: *",
            "ttft_ms.p50 * slow * base * REGRESSION",
            f"mathperf: verdicts: 26 passed, 1 failed, 2 inconclusive · {headline}",
            "mathperf: wrote view.json",
        ]
    )
    assert "FAILED budget" not in run.output

    # the Markdown
    markdown = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert markdown.startswith("### mathperf gate FAILED on cpu\n\n**" + escape(headline) + "**\n")
    assert "| budgets | 1 passed, 0 failed, 1 inconclusive | 1 passed, 0 failed, 1 inconclusive |" in markdown
    assert "**Budgets not passed (2 of 4)**" in markdown and markdown.count("| inconclusive |") == 2
    assert "**Comparisons not within their margin (1 of 1)**" in markdown and "| regression |" in markdown

    # the HTML report: its header says the gate failed and why; inconclusive apart from failed
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert f'<span class="status fail" data-gate="failed">{headline}</span>' in page
    assert "budgets 2 passed, 0 failed, 2 inconclusive" in page
    assert "verdicts 26 passed, 1 failed, 2 inconclusive" in page
    assert Counter(re.findall(r'<tr class="(passed|failed|inconclusive)"><td', page)) == {"passed": 2, "inconclusive": 2}
    assert sorted(re.findall(r'data-verdict="([^"]+)"', page)) == ["failed", "inconclusive"]  # the fleet cells: slow, base
    assert "failed in" not in page  # no budget failed in any run, so no chart marks one

    # JUnit XML: one failure, the two inconclusive budgets skipped, each item's verdict as the view's
    cases = {f"{case.get('classname')}.{case.get('name')}": case for case in run.junit.iter("testcase")}
    failed = [name for name, case in cases.items() if case.find("failure") is not None]
    skipped = sorted(name for name, case in cases.items() if case.find("skipped") is not None)
    assert len(failed) == 1 and failed[0].endswith("slow.compare.ttft_ms.p50")
    assert [name.rsplit(".", 2)[1] for name in skipped] == ["base", "slow"] and all(name.endswith(".accuracy") for name in skipped)
    junit_verdicts = Counter(run.properties(name)["mathperf.verdict"] for name in ("base::accuracy", "slow::accuracy"))
    assert junit_verdicts == {"inconclusive": 2}
    assert run.properties("slow::compare::ttft_ms.p50")["mathperf.verdict"] == "regression"
    assert run.properties("base::tokens_per_s.mean")["mathperf.verdict"] == "passed"

    # pytest-html: the same verdict in the gate's column of every row
    rows = PytestHtmlRows((pytester.path / "pytest-html.html").read_text(encoding="utf-8")).verdicts()
    assert rows[regression] == "regression"
    assert [rows[nodeid] for nodeid in inconclusive] == ["inconclusive", "inconclusive"]
    assert Counter(verdict.split(" (")[0] for verdict in rows.values()) == {"correct": 24, "passed": 2, "inconclusive": 2, "regression": 1}


class Breaks:
    name = "breaks"
    order = 1

    def publish(self, view: object) -> list[str]:
        raise OSError("disk full")


class Says:
    def __init__(self, name: str, order: int, line: str) -> None:
        self.name, self.order, self.line = name, order, line

    def publish(self, view: object) -> list[str]:
        return [self.line]


def test_surfaces_publish_in_order_the_first_of_a_name_wins_and_a_broken_one_stops_no_other() -> None:
    mine = Says("markdown", 20, "my markdown")
    chosen = chosen_surfaces([[mine, Breaks()], [Says("markdown", 20, "built-in markdown"), Says("terminal", 90, "terminal")]])
    assert [surface.name for surface in chosen] == ["breaks", "markdown", "terminal"] and chosen[1] is mine
    assert publish_all(chosen, view=None) == (  # type: ignore[arg-type]
        ["mathperf: breaks NOT published: OSError: disk full", "my markdown", "terminal"],
        True,  # an output that broke: the run's exit status says so
    )


def _run(*budgets: BudgetRecord) -> RunRecord:
    generation = GenerationRecord(0, 0, "correct", "2", "equivalent", "stop", {"ttft_ms": 5.0, "tokens_per_s": 200.0}, "\\boxed{2}")
    case = CaseRecord("m", "arithmetic", "add", "suites/a.yaml::add[m]", "1 + 1?", "2", (), "majority", True, (generation,))
    model = ModelRecord("m", "hf", "cpu", "cpu", "float32", None, None, {"load_s": 0.5}, "rss")
    return RunRecord(0.0, 1.0, {"card": "cpu"}, (model,), (case,), tuple(budgets))


def _budget(name: str, status: str) -> BudgetRecord:
    return BudgetRecord("m", name, "ttft_ms", "p50", "model", None, None, None, 10.0, 5.0, 1, status == "passed", "cpu", f"thresholds.yaml::m::{name}", status)


def _header(view: RunView, tmp_path: Path) -> str:
    """The header's latest-run line as a reader sees it: tags dropped, spaces collapsed."""
    write_report(None, tmp_path / "report.html", current=view)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    line = re.search(r"<p>Latest: (.*?)</p>", page, re.S)
    assert line is not None
    return " ".join(re.sub(r"<[^>]+>", "", line.group(1)).split())


def test_the_html_header_of_a_run_without_budgets_spaces_its_parts(tmp_path: Path) -> None:
    header = _header(build_view(_run(), "cpu", exit_status=0), tmp_path)
    assert header.endswith("— gate passed · no budgets applied · verdicts 1 passed, 0 failed · 1/1 cases passed")


def test_an_inconclusive_budget_read_back_from_a_history_is_no_failure_in_the_html_header(tmp_path: Path) -> None:
    view = build_view(_run(_budget("ttft_ms.p50", "passed"), _budget("ttft_ms.p95", "inconclusive")), "cpu")  # no exit status
    header = _header(view, tmp_path)
    assert "fail" not in header.replace("0 failed", "")
    assert "budgets 1 passed, 0 failed, 1 inconclusive" in header
    failing = build_view(_run(_budget("ttft_ms.p50", "failed")), "cpu")
    assert "failed: 1 budget failed: ttft_ms.p50 of m" in _header(failing, tmp_path)


def test_a_history_read_back_keeps_regressions_failed_and_inconclusive_apart(tmp_path: Path) -> None:
    from pytest_mathperf.history import History
    from pytest_mathperf.report.html import page_from_history
    from pytest_mathperf.results import ComparisonRecord

    regression = ComparisonRecord(
        "m", "base", "ttft_ms.p50", "ttft_ms", "p50", None, "ratio ≤ 1.25", "regression", 3.0, 2.9, 3.1, 0.001, 12,
        15.0, 5.0, "", "cpu", "thresholds.yaml::m::compare::ttft_ms.p50",
    )
    with History(tmp_path / "history.db") as history:
        history.append(_run(_budget("ttft_ms.p50", "passed"), _budget("ttft_ms.p95", "inconclusive")))
        history.append(replace(_run(_budget("ttft_ms.p50", "passed")), comparisons=(regression,)))
    page = page_from_history(tmp_path / "history.db").page
    # the fleet cell of m is its latest run: passed budgets, but a regression
    assert re.findall(r'data-verdict="([^"]+)"', page) == ["failed"]
    assert "ttft_ms.p50 regressed" in page
    # the first run's inconclusive budget marks no chart point as failed
    assert "budget FAILED" not in page and "failed in" not in page
