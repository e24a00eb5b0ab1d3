"""A gate never passes quietly having judged nothing, measured something else or recorded less than it ran."""

from __future__ import annotations

import pytest
from conftest import ARITHMETIC_SUITE, write

BUDGETS = """
version: 1
no_budget: {policy}
cards:
  cpu:
    models:
      mathperf-tiny:
        {budgets}
"""


def test_a_run_whose_every_case_is_skipped_meets_the_no_budget_policy(pytester, run_scripted) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE.replace("    tags:", '    skip: "flaky"\n    tags:'))
    write(pytester, "thresholds.yaml", BUDGETS.format(policy="fail", budgets="accuracy: {min: 0.9}"))
    run = run_scripted()
    run.result.assert_outcomes(skipped=3)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    run.result.stdout.fnmatch_lines(["mathperf: NOTHING judged (this fails the run): no case ran (every selected case was skipped)"])
    write(pytester, "thresholds.yaml", BUDGETS.format(policy="skip", budgets="accuracy: {min: 0.9}"))
    lenient = run_scripted()
    assert lenient.result.ret == pytest.ExitCode.OK
    lenient.result.stdout.fnmatch_lines(["mathperf: NOTHING judged (nothing judged it): no case ran*"])


def test_a_budget_for_a_suite_spelt_otherwise_is_warned_about(pytester, run_scripted) -> None:
    write(pytester, "suites/small.yaml", ARITHMETIC_SUITE.replace("suite: arithmetic", "suite: small"))
    budgets = "ttft_ms: {p50: {max: 1000}}\n        suites:\n          SMALL: {accuracy: {min: 0.9}}"
    write(pytester, "thresholds.yaml", BUDGETS.format(policy="skip", budgets=budgets))
    run = run_scripted()
    run.result.assert_outcomes(passed=4)
    run.result.stdout.fnmatch_lines(
        ["*mathperf: *thresholds.yaml:9: accuracy is for suite 'SMALL', which no collected suite file defines, so it judges nothing; did you mean 'small'?"]
    )
    # a suite file left out by a path argument is no mistake: only near misses are warned about then
    write(pytester, "thresholds.yaml", BUDGETS.format(policy="skip", budgets=budgets.replace("SMALL", "geometry")))
    narrowed = run_scripted("suites/small.yaml")
    narrowed.result.assert_outcomes(passed=4)
    assert "judges nothing" not in narrowed.output


@pytest.mark.parametrize("stop", ["-x", "--sw"])
def test_a_run_stopped_early_is_recorded_as_partial_and_is_no_trend_point(pytester, run_scripted, stop: str) -> None:
    from pytest_mathperf.history import History

    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    scripts = {"*": {"answers": {"计算 501 - 885": "\\boxed{7}"}}}  # the second case fails, the third never runs
    run = run_scripted(stop, scripts=scripts, history=True, cache=True)
    run.result.assert_outcomes(passed=1, failed=1)
    run.result.stdout.fnmatch_lines(["mathperf: recorded run 1 in * (marked incomplete: the session * 1 of 3 selected items not run)"])
    with History(pytester.path / ".mathperf" / "history.db") as history:
        assert history.incomplete_run_ids() == [1]
        assert history.latest_run() is None
        assert [case.case for case in history.run(1).cases] == ["add", "sub"]


LOSE_THE_REPORTS_FOLDER = '''

import shutil

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    shutil.rmtree("reports")  # the folder the gate checked at the start is a file by the end
    open("reports", "w").close()
'''


def test_a_requested_report_that_cannot_be_written_fails_the_run(pytester, run_scripted) -> None:
    from scripted import conftest_source

    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    run = run_scripted("--mathperf-html=reports/gate.html", "--mathperf-markdown=reports/gate.md")
    assert run.result.ret == pytest.ExitCode.OK and (pytester.path / "reports" / "gate.html").is_file()
    # run_scripted writes its conftest; this one adds the fault to it
    original = pytester.path.joinpath("conftest.py")
    original.write_text(conftest_source({"*": {}}) + LOSE_THE_REPORTS_FOLDER, encoding="utf-8")
    result = pytester.runpytest(
        "--mathperf", "--mathperf-backend=scripted", "--mathperf-device=cpu", "--mathperf-model=mathperf-tiny",
        "--mathperf-busy-guard=off", "--mathperf-no-history", "-p", "no:cacheprovider",
        "--mathperf-html=reports/gate.html", "--mathperf-markdown=reports/gate.md",
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 7
    result.stdout.fnmatch_lines(["mathperf: report NOT written: *", "mathperf: Markdown summary NOT written to */reports/gate.md: Not a directory"])
