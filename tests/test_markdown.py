"""The Markdown summary: what it says, that hostile text stays text, and where the gate writes it."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import pytest
from conftest import ARITHMETIC_SUITE, COMPARE, TWELVE_CASES, write
from markdown_it import MarkdownIt

from pytest_mathperf.judge import BudgetPlan, ModelPlan
from pytest_mathperf.markdown import MAX_WRONG_ANSWERS, escape, markdown_summary
from pytest_mathperf.outputs.view import build_view
from pytest_mathperf.results import (
    BudgetRecord,
    CaseRecord,
    ComparisonRecord,
    GenerationRecord,
    ModelRecord,
    RunRecord,
)
from pytest_mathperf.summary import budget_plan_lines

HOSTILE = "x | y <script>alert(1)</script> `tick` **bold** [link](http://example.com)"


def summary(run: RunRecord, card: str, plan: BudgetPlan | None = None, *, gate_passed: bool | None = None, html_report: str | None = None) -> str:
    """The Markdown of the run's view, as the gate writes it."""
    exit_status = None if gate_passed is None else (0 if gate_passed else 1)
    lines = budget_plan_lines(plan, card) if plan is not None else []
    return markdown_summary(build_view(run, card, exit_status=exit_status, plan_lines=lines), html_report=html_report)


def render(markdown: str) -> ElementTree.Element:
    """The Markdown as GitHub renders it (CommonMark with raw HTML allowed, plus tables), parsed."""
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    return ElementTree.fromstring(f"<root>{html}</root>")


def table_after(root: ElementTree.Element, heading: str) -> list[list[str]]:
    """The rows (header first) of the table right after the paragraph that starts with ``heading``."""
    children = list(root)
    for index, element in enumerate(children):
        if element.tag == "p" and "".join(element.itertext()).startswith(heading):
            table = children[index + 1]
            assert table.tag == "table", f"no table after {heading!r}"
            return [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]
    raise AssertionError(f"no paragraph {heading!r} in {[''.join(e.itertext())[:40] for e in children]}")


def generation(status: str, extracted: str | None, output: str = "", reason: str = "not equivalent") -> GenerationRecord:
    return GenerationRecord(0, 0, status, extracted, reason, "stop", {"ttft_ms": 4.0, "tokens_per_s": 600.0}, output)


def case(name: str, expected: str, extracted: str | None, model: str = "m1", passed: bool = False) -> CaseRecord:
    status = "correct" if passed else ("wrong" if extracted else "no_answer")
    return CaseRecord(
        model, "arithmetic", name, f"suites/a.yaml::arithmetic::{name}[{model}]", "What?", expected, (), "majority",
        passed, (generation(status, extracted, output=f"\\boxed{{{extracted}}}"),),
    )


def model(name: str, **details: str) -> ModelRecord:
    return ModelRecord(name, "hf", "cpu", "cpu", "float32", None, None, {"load_s": 1.25, "rss_peak_gb": 0.38}, "rss", details=details)


def budget(name: str, metric: str, measured: float | None, status: str, reason: str = "", **bounds: float) -> BudgetRecord:
    return BudgetRecord(
        "m1", name, metric, name.partition(".")[2] or None, "model", None, None, bounds.get("minimum"), bounds.get("maximum"),
        measured, 3, status == "passed", "cpu", f"thresholds.yaml::m1::{name}", status, reason,
    )


def test_a_failing_run_shows_the_models_side_by_side_and_everything_that_did_not_pass() -> None:
    run = RunRecord(
        0.0, 1.0, {}, (model("m1"), model("m2", host_busy="load 3.9 on 2 cores")),
        (case("add", "1288", "1288", passed=True), case("sub", "-384", "384"), case("add", "1288", "1288", model="m2", passed=True)),
        (
            budget("ttft_ms.p50", "ttft_ms", 4.0, "failed", maximum=0.5),
            budget("tokens_per_s.mean", "tokens_per_s", 600.0, "passed", minimum=60),
            budget("accuracy", "accuracy", None, "inconclusive", reason="the host was busy", minimum=0.9),
        ),
        (
            ComparisonRecord(
                "m2", "m1", "ttft_ms.p50", "ttft_ms", "p50", None, "ratio ≤ 1.25", "regression", 1.8, 1.5, 2.1, 0.001,
                40, 7.2, 4.0, "", "cpu", "thresholds.yaml::m2::vs::m1::ttft_ms.p50",
            ),
            ComparisonRecord(
                "m2", "m1", "accuracy", "accuracy", None, "arithmetic", "drop ≤ 5.0%", "within_margin", 0.0, -0.02, 0.03,
                1.0, 40, 1.0, 1.0, "", "cpu", "thresholds.yaml::m2::vs::m1::accuracy",
            ),
        ),
    )
    plan = BudgetPlan({"m1": ModelPlan("m1", ()), "m2": ModelPlan("m2", no_budget_reason="no entry for model 'm2'")}, "skip")
    text = summary(run, "cpu", plan, gate_passed=False, html_report="mathperf-report.html")
    root = render(text)

    assert text.startswith("### mathperf gate FAILED on cpu\n")
    side_by_side = [["".join(cell.itertext()) for cell in row] for row in root.find("table").iter("tr")]
    assert side_by_side[0] == ["", "m1", "m2"]
    assert ["card", "cpu", "cpu"] in side_by_side
    assert ["load (s)", "1.25", "1.25"] in side_by_side
    assert ["TTFT p50 (ms)", "4.00", "4.00"] in side_by_side
    assert ["accuracy arithmetic", "50% (1/2, CI 9%–91%)", "100% (1/1, CI 21%–100%)"] in side_by_side
    assert ["budgets", "1 passed, 1 failed, 1 inconclusive", "–"] in side_by_side

    budgets = table_after(root, "Budgets not passed (2 of 3)")
    assert budgets[1] == ["m1", "ttft_ms.p50", "failed", "4.00 ms", "≤ 0.5 ms", "3", "–"]
    assert budgets[2] == ["m1", "accuracy", "inconclusive", "nothing measured", "≥ 90.0%", "3", "the host was busy"]
    comparisons = table_after(root, "Comparisons not within their margin (1 of 2)")
    assert comparisons[1] == ["m2", "m1", "ttft_ms.p50", "regression", "1.80× [1.50×, 2.10×]", "ratio ≤ 1.25", "7.20 ms vs 4.00 ms", "–"]
    wrong = table_after(root, "Wrong answers (1 of 3 cases)")
    assert wrong[1] == ["m1", "arithmetic::sub", "wrong", "-384", "384", "0/1"]
    notes = ["".join(item.itertext()) for item in root.iter("li")]
    assert notes == [
        "NO budget applied to m2 (nothing judged it): no entry for model 'm2'",
        "HOST BUSY while m2 was measured: load 3.9 on 2 cores",
    ]
    assert text.rstrip().endswith("The HTML trend report is in the job's artifacts as mathperf-report.html.")
    assert "](" not in text and "http" not in text  # link-free: the same text works as a PR comment


def test_a_passing_run_is_the_table_alone() -> None:
    run = RunRecord(0.0, 1.0, {}, (model("m1"),), (case("add", "1288", "1288", passed=True),), (budget("ttft_ms.p50", "ttft_ms", 4.0, "passed", maximum=40),))
    text = summary(run, "cpu", BudgetPlan({"m1": ModelPlan("m1", ())}), gate_passed=True)
    assert text.startswith("### mathperf gate passed on cpu\n")
    assert "not passed" not in text and "Wrong answers" not in text and "artifacts" not in text
    assert len(text.split("\n\n")) == 2  # the headline, the table


def test_hostile_model_output_and_names_stay_text_in_their_cells() -> None:
    hostile_model = "evil|model<b>"
    run = RunRecord(
        0.0, 1.0, {}, (model(hostile_model),),
        (case("pipe", "a | b", HOSTILE, model=hostile_model), case("ok", "1", "1", model=hostile_model, passed=True)),
        (),
    )
    root = render(summary(run, "RTX `3090` <i>", gate_passed=False))
    assert root.find(".//script") is None and root.find(".//b") is None and root.find(".//i") is None
    assert root.find(".//a") is None and root.find(".//code") is None and root.find(".//em") is None
    assert all(cell.find("strong") is None for cell in root.iter("td"))
    assert "".join(root.find("h3").itertext()) == "mathperf gate FAILED on RTX `3090` <i>"
    wrong = table_after(root, "Wrong answers")
    assert wrong[0] == ["model", "case", "verdict", "expected", "extracted", "correct"]
    assert wrong[1] == [hostile_model, "arithmetic::pipe", "wrong", "a | b", HOSTILE, "0/1"]
    side_by_side = [["".join(cell.itertext()) for cell in row] for row in root.find("table").iter("tr")]
    assert side_by_side[0] == ["", hostile_model]


def test_escape_keeps_text_literal_on_one_line() -> None:
    assert escape("a\nb  c") == "a b c"
    assert escape("1 < 2 & 3 > 2") == "1 &lt; 2 &amp; 3 &gt; 2"
    assert escape(r"\frac{1}{2} x_1 * y | z") == r"\\frac{1}{2} x\_1 \* y \| z"
    assert escape("&lt;") == "&amp;lt;"  # an entity in a model's output is shown, not decoded


def test_wrong_answers_are_capped_with_a_count_of_the_rest() -> None:
    cases = tuple(case(f"c{index}", str(index), str(index + 1)) for index in range(MAX_WRONG_ANSWERS + 4))
    long_answer = case("long", "1", "9" * 500)
    run = RunRecord(0.0, 1.0, {}, (model("m1"),), (long_answer, *cases), ())
    text = summary(run, "cpu")
    root = render(text)
    wrong = table_after(root, f"Wrong answers ({MAX_WRONG_ANSWERS + 5} of {MAX_WRONG_ANSWERS + 5} cases)")
    assert len(wrong) == 1 + MAX_WRONG_ANSWERS
    assert wrong[1][4] == "9" * 79 + "…"
    assert "… and 5 more: each one is in the JUnit report, with its raw output." in text
    assert text.startswith("### mathperf gate on cpu\n")  # no session outcome given, no verdict claimed


CPU_BUDGETS = """
version: 1
cards:
  cpu:
    models:
      mathperf-tiny:
        ttft_ms: {p50: {max: 0.0001}}
        tokens_per_s: {mean: {min: 1}}
"""


def test_the_gate_writes_the_file_and_appends_to_githubs_step_summary(pytester, run_scripted, monkeypatch) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 1288", "answer: 1289"))
    write(pytester, "thresholds.yaml", CPU_BUDGETS)
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("## an earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    run = run_scripted("--mathperf-markdown", "out/summary.md", "--mathperf-html", "reports/mathperf-report.html")
    run.result.assert_outcomes(passed=3, failed=2)

    text = (pytester.path / "out" / "summary.md").read_text(encoding="utf-8")
    assert step_summary.read_text(encoding="utf-8") == "## an earlier step\n" + text
    root = render(text)
    assert text.startswith("### mathperf gate FAILED on cpu\n")
    budgets = table_after(root, "Budgets not passed (1 of 2)")
    assert budgets[1][:3] == ["mathperf-tiny", "ttft_ms.p50", "failed"]
    assert budgets[1][3] == "5.00 ms" and budgets[1][4] == "≤ 0.0001 ms"
    assert table_after(root, "Wrong answers (1 of 3 cases)")[1] == ["mathperf-tiny", "arithmetic::add", "wrong", "1289", "1288", "0/1"]
    assert "The HTML trend report is in the job's artifacts as mathperf-report.html." in text
    run.result.stdout.fnmatch_lines(["mathperf: wrote the Markdown summary to *out/summary.md", "mathperf: wrote the Markdown summary to *step-summary.md"])


def test_a_passing_gate_says_so_and_writes_no_step_summary_outside_github(pytester, run_scripted, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("--mathperf-markdown", "summary.md")
    run.result.assert_outcomes(passed=3)
    text = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert text.startswith("### mathperf gate passed on cpu\n")
    assert ["accuracy arithmetic", "100% (3/3, CI 44%–100%)"] in [
        ["".join(cell.itertext()) for cell in row] for row in render(text).find("table").iter("tr")
    ]
    assert "Wrong answers" not in text and "artifacts" not in text
    assert run.output.count("wrote the Markdown summary") == 1


def test_outside_a_github_job_the_summary_says_where_the_report_was_written(pytester, run_scripted, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run_scripted("--mathperf-markdown", "summary.md", "--mathperf-html", "reports/mathperf-report.html")
    text = (pytester.path / "summary.md").read_text(encoding="utf-8")
    assert "artifacts" not in text
    last = ["".join(paragraph.itertext()) for paragraph in render(text).iter("p")][-1]
    assert last == f"The HTML trend report was written to {pytester.path / 'reports' / 'mathperf-report.html'}."


def test_an_unwritable_markdown_path_is_refused_before_anything_runs(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    (pytester.path / "taken").mkdir()
    run = run_scripted("--mathperf-markdown", "taken")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(["*--mathperf-markdown: *taken cannot be written: is a folder*"])


def test_a_step_summary_that_cannot_be_written_does_not_hide_the_verdict(pytester, run_scripted, monkeypatch) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "no-such-folder" / "summary.md"))
    run = run_scripted()
    run.result.assert_outcomes(passed=3)
    assert run.result.ret == pytest.ExitCode.OK
    run.result.stdout.fnmatch_lines(["mathperf: Markdown summary NOT written to *no-such-folder/summary.md: No such file or directory"])


def test_under_xdist_the_controller_writes_the_summary_once_with_every_case(pytester, run_scripted, monkeypatch) -> None:
    pytest.importorskip("xdist")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("answer: 51", "answer: 52"))
    write(pytester, "answers-only.yaml", "version: 1\n")
    step_summary = pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    run = run_scripted("-n", "2", "--mathperf-thresholds", "answers-only.yaml")
    run.result.assert_outcomes(passed=2, failed=1)
    text = step_summary.read_text(encoding="utf-8")
    assert text.count("### mathperf gate") == 1 and text.startswith("### mathperf gate FAILED on cpu\n")
    root = render(text)
    assert table_after(root, "Wrong answers (1 of 3 cases)")[1] == ["mathperf-tiny", "arithmetic::sub-en", "wrong", "52", "51", "0/1"]


def test_a_regression_against_the_baseline_is_listed_with_its_interval(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", TWELVE_CASES)
    write(pytester, "thresholds.yaml", COMPARE)
    jitter = [5.0, 5.5, 4.8, 5.2, 5.1, 4.9]
    scripts = {"base": {"ttft_ms": jitter}, "slow": {"ttft_ms": [3 * t for t in jitter]}}
    run = run_scripted("--mathperf-markdown", "summary.md", scripts=scripts, models=("base", "slow"))
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    text = (pytester.path / "summary.md").read_text(encoding="utf-8")
    comparisons = table_after(render(text), "Comparisons not within their margin (1 of 3)")
    candidate, baseline, name, verdict, estimate, margin, values, why = comparisons[1]
    assert (candidate, baseline, name, verdict, margin) == ("slow", "base", "ttft_ms.p50", "regression", "ratio ≤ 1.25")
    ratio, low, high = (float(part.strip("[]×,")) for part in estimate.split())
    assert 2.9 < ratio < 3.1 and 1.25 < low <= ratio <= high
    assert values == "15.1 ms vs 5.05 ms"  # p50 of 3 × the jitter, against p50 of the jitter
    assert "NO budget applied to base" not in text  # the baseline is judged by the comparisons
