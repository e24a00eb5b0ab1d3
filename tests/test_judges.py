"""Which cases a budget or comparison judges: one function, asked by the plan, the samples, --lf and comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mathperf.compare import Comparison
from pytest_mathperf.judge import ModelPlan, judge_case, judges
from pytest_mathperf.results import CaseRecord, GenerationRecord
from pytest_mathperf.thresholds import Budget


def budget(scope: str, suite: str | None = None, case: str | None = None, metric: str = "accuracy") -> Budget:
    return Budget(metric, None, 0.9, None, scope, suite, case, Path("thresholds.yaml"), 1, None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule", "judged"),
    [
        (budget("model"), {("algebra", "a"), ("algebra", "b"), ("geometry", "c"), ("algebra", None)}),
        (budget("suite", "algebra"), {("algebra", "a"), ("algebra", "b"), ("algebra", None)}),
        (budget("case", "algebra", "a"), {("algebra", "a")}),
        (budget("load", "algebra", metric="load.e2e_ms"), {("algebra", None)}),
        (Comparison("ttft_ms", "p50", 1.25, None, None, "suite", "geometry", Path("t.yaml"), 1), {("geometry", "c")}),
    ],
)
def test_a_rule_judges_the_cases_of_its_scope(rule: Budget | Comparison, judged: set) -> None:
    measured = [("algebra", "a"), ("algebra", "b"), ("geometry", "c"), ("algebra", None)]  # None: the suite's load profile
    assert {(suite, case) for suite, case in measured if judges(rule, suite, case)} == judged


def test_an_accuracy_budget_on_one_case_leaves_only_that_case_to_it() -> None:
    wrong = GenerationRecord(0, 0, "wrong", "3", "not equivalent", "stop", {}, "\\boxed{3}")

    def record(case: str) -> CaseRecord:
        return CaseRecord("m", "algebra", case, f"s.yaml::{case}[m]", "?", "2", (), "majority", False, (wrong,))

    plan = ModelPlan("m", (budget("case", "algebra", "a"),))
    assert judge_case(record("a"), plan, strict=False).status == "left_to_budget"
    assert judge_case(record("b"), plan, strict=False).status == "failed"  # the budget on case a does not judge case b


def test_a_budget_is_judged_from_measurements_alone() -> None:
    from pytest_mathperf.judge import judge_budget
    from pytest_mathperf.measurements import Measurements

    def generation(repeat: int, ttft: float) -> GenerationRecord:
        return GenerationRecord(repeat, 0, "correct", "2", "equivalent", "stop", {"ttft_ms": ttft}, "\\boxed{2}")

    case = CaseRecord("m", "algebra", "a", "s.yaml::a[m]", "?", "2", (), "majority", True, tuple(generation(i, t) for i, t in enumerate((4.0, 6.0, 50.0))))
    measured = Measurements("m", "cpu", None, False, (case,), (), {"rss_peak_gb": 0.4}, None, False)
    ttft = Budget("ttft_ms", "p50", None, 10.0, "suite", "algebra", None, Path("thresholds.yaml"), 1, None, None)
    assert (judge_budget(measured, ttft).status, judge_budget(measured, ttft).measured, judge_budget(measured, ttft).samples) == ("passed", 6.0, 3)
    busy = Measurements("m", "cpu", None, False, (case,), (), {}, "other processes used 1.5 of 2 cores", False)
    strict = Budget("ttft_ms", "p50", None, 5.0, "model", None, None, Path("thresholds.yaml"), 1, None, None)
    assert judge_budget(busy, strict).status == "inconclusive"
    vram = Budget("vram_peak_gb", None, None, 8.0, "model", None, None, Path("thresholds.yaml"), 1, None, None)
    outcome = judge_budget(measured, vram)
    assert outcome.status == "cannot_judge" and outcome.reason == "vram_peak_gb is not measured for m on cpu"
