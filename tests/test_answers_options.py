"""The percent rule as a check option and a suite field, expected forms authors write, the
reasons of the new answer kinds, and pathological outputs that must still get a verdict."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_mathperf.answers import check_answer, validate_expected
from pytest_mathperf.suite import load_suite
from pytest_mathperf.yamlfile import SchemaError


@pytest.mark.parametrize(
    ("percent", "expected", "status"),
    [
        ("value", 25, "correct"),
        ("value", "1/4", "wrong"),
        ("fraction", 25, "wrong"),
        ("fraction", "1/4", "correct"),
        ("either", 25, "correct"),
        ("either", "1/4", "correct"),
        ("either", "1/3", "wrong"),
    ],
)
def test_percent_rule(percent: str, expected: object, status: str) -> None:
    verdict = check_answer("</think>\\boxed{25\\%}", expected, percent=percent)  # type: ignore[arg-type]
    assert (verdict.status, verdict.extracted) == (status, "25")


def test_percent_default_is_either() -> None:
    assert check_answer("</think>\\boxed{25\\%}", "1/4").correct
    assert check_answer("</think>\\boxed{25\\%}", 25).correct


def test_unknown_percent_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="percent must be one of value, fraction, either, got 'ratio'"):
        check_answer("\\boxed{1}", 1, percent="ratio")  # type: ignore[arg-type]


def write_suite(directory: Path, body: str) -> Path:
    path = directory / "shares.yaml"
    path.write_text(textwrap.dedent(body).lstrip("\n"), encoding="utf-8")
    return path


def test_suite_percent_field_per_case_and_in_defaults(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        """
        defaults:
          percent: value
        cases:
          - id: a
            prompt: "What share is 1 of 4, in percent?"
            answer: 25
          - id: b
            prompt: "What share is 1 of 4?"
            answer: "1/4"
            percent: fraction
          - id: c
            prompt: "What share is 1 of 2?"
            answer: "1/2"
        """,
    )
    cases = {case.id: case for case in load_suite(path).cases}
    assert [cases[name].percent for name in "abc"] == ["value", "fraction", "value"]


def test_suite_default_percent_rule(tmp_path: Path) -> None:
    path = write_suite(tmp_path, 'cases:\n  - {id: a, prompt: "p", answer: 1}\n')
    assert load_suite(path).cases[0].percent == "either"


def test_suite_bad_percent_names_the_line(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        """
        cases:
          - id: a
            prompt: "p"
            answer: 1
            percent: ratio
        """,
    )
    with pytest.raises(SchemaError) as raised:
        load_suite(path)
    assert str(raised.value) == f"{path}:5: percent: must be value | fraction | either, got 'ratio'"


@pytest.mark.parametrize(
    "expected",
    [
        pytest.param("1 - \\frac{1}{\\mathrm{e}}", id="roman-e"),
        pytest.param("\\pm 3", id="plus-minus"),
        pytest.param("x = 1 \\pm \\sqrt{2}", id="plus-minus-equation"),
        pytest.param("\\sqrt[3]{2}", id="cube-root"),
        pytest.param("是", id="zh-yes"),
        pytest.param("odd", id="word"),
        pytest.param("(C)", id="choice"),
        pytest.param("12:00", id="clock"),
        pytest.param("25\\%", id="percent"),
        pytest.param("1.25 万", id="wan"),
        pytest.param("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", id="matrix"),
        pytest.param("\\{(1, 2), (3, 4)\\}", id="set-of-pairs"),
        pytest.param("x \\neq 5", id="relation"),
    ],
)
def test_expected_forms_authors_write_are_accepted(expected: str) -> None:
    assert validate_expected(expected) is None


@pytest.mark.parametrize(
    ("output", "expected", "reason"),
    [
        pytest.param("</think>The answer is (D).", "C", "'D' is not C", id="choice"),
        pytest.param("</think>No.", "Yes", "'no' is not Yes", id="yes-no"),
        pytest.param("</think>The distance is 5 m.", "5 km", "5 m ≠ 5 km", id="unit-value"),
        pytest.param("</think>\\boxed{5\\text{ kg}}", "5 m", "5 kg is not in m (expected 5 m)", id="unit-kind"),
        pytest.param(
            "</think>It takes 180 minutes.", "3 hours", "matches 3 hours (min converted to h)", id="unit-converted"
        ),
        pytest.param("</think>\\boxed{1:00}", "12:00", "1:00 ≠ 12:00", id="clock"),
        pytest.param(
            "</think>答：无解。", 2, "'无解' gives no value (expected 2)", id="no-value"
        ),
        pytest.param("</think>x = 1 \\pm 2", [-1, 3], "matches -1, 3 (any order)", id="plus-minus"),
    ],
)
def test_reasons_of_new_kinds(output: str, expected: object, reason: str) -> None:
    assert check_answer(output, expected).reason == reason


VERDICTS = {"correct", "wrong", "no_answer", "truncated"}
PATHOLOGICAL = [
    pytest.param("</think>" + "{" * 50_000 + "\\boxed{C}" + "}" * 50_000, id="deep-braces"),
    pytest.param("</think>" + "\\begin{pmatrix}" * 20_000, id="unclosed-matrices"),
    pytest.param("</think>" + "\\[ 1 & 2 " * 12_000, id="unclosed-display-math"),
    pytest.param("</think>" + "$$ \\pm " * 15_000, id="plus-minus-flood"),
    pytest.param("</think>" + "1 000 " * 20_000, id="space-groups"),
    pytest.param("</think>" + "(2,100) \\cup " * 8_000, id="interval-flood"),
    pytest.param("</think>" + "答案是 1.25 万，" * 10_000, id="wan-flood"),
    pytest.param("</think>" + "the answer is (C) " * 6_000, id="choice-flood"),
    pytest.param("</think>" + "5 cm " * 20_000, id="unit-flood"),
    pytest.param("</think>" + "since a, " * 12_000, id="prose-flood"),
    pytest.param("<think>" + "x = 1 \\pm 2 " * 9_000, id="100k-unclosed-think"),
]
EXPECTED = [
    pytest.param("C", id="choice"),
    pytest.param("odd", id="word"),
    pytest.param("\\pm 3", id="both-roots"),
    pytest.param("\\{(1, 2), (3, 4)\\}", id="set"),
    pytest.param("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", id="matrix"),
    pytest.param("5 km", id="unit"),
    pytest.param([1, 2], id="list"),
    pytest.param({"x": 1, "y": 2}, id="named"),
]


@pytest.mark.parametrize("expected", EXPECTED)
@pytest.mark.parametrize("output", PATHOLOGICAL)
def test_pathological_outputs_get_a_verdict(output: str, expected: object) -> None:
    assert len(output) >= 50_000
    assert check_answer(output, expected, truncated=True).status in VERDICTS
