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
