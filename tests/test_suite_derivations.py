"""Every shipped expected answer is derived, not trusted: a wrong one would silently fail good models.

Each case of ``suites/`` (the demo model's own suites aside) carries a ``derivation:`` that sympy
evaluates; the result, boxed as a model would write it, must pass ``check_answer`` against the
case's ``answer``. Cases imported from JSONL carry their derivation in the record's
``derivation`` field. A case that cannot be derived says why in ``{not_derivable: reason}``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_mathperf.answers import check_answer
from pytest_mathperf.derivations import (
    DerivationError,
    check_derivation,
    derive,
    not_derivable_reason,
    render,
)
from pytest_mathperf.suite import Case, Suite, load_suite

SUITES = Path(__file__).resolve().parent.parent / "suites"
SHIPPED: list[Suite] = [
    load_suite(path) for path in sorted(SUITES.glob("*.yaml"))  # not suites/demo: the demo model's
]
CASES: list[tuple[Suite, Case]] = [(suite, case) for suite in SHIPPED for case in suite.cases]
TOPICS = ("algebra", "geometry", "word-problems", "number-theory", "combinatorics", "sequences", "calculus")
DIFFICULTIES = ("easy", "medium", "hard", "competition")

#: The seed benchmark write-up's prompts and true answers, verbatim (suites/seed.yaml carries them too).
SEED_PROMPTS = {
    "已知 x + 2y = 10,3x - y = 5,求 x 和 y 的值。": "x = 20/7, y = 25/7",
    "一个圆的半径为 5cm,求其面积和周长。": "面积为 25π cm²，周长为 10π cm",
    "小明买书花了60元,其中科技书每本15元,文学书每本10元,共买了5本书,问各买了几本?": "科技书2本，文学书3本",
    "两个连续奇数之和为 36,求这两个数。": "这两个数是 17 和 19",
}
SEED_WRONG = {
    "已知 x + 2y = 10,3x - y = 5,求 x 和 y 的值。": "x = 4, y = 3",
    "一个圆的半径为 5cm,求其面积和周长。": "面积为 10π cm²，周长为 25π cm",
    "小明买书花了60元,其中科技书每本15元,文学书每本10元,共买了5本书,问各买了几本?": "科技书3本，文学书2本",
    "两个连续奇数之和为 36,求这两个数。": "这两个数是 15 和 21",
}


def where(suite: Suite, case: Case) -> str:
    return f"{case.source or suite.path}:{case.line}: {case.id}"


@pytest.mark.parametrize(("suite", "case"), CASES, ids=[f"{s.name}::{c.id}" for s, c in CASES])
def test_derivation_agrees_with_answer(suite: Suite, case: Case) -> None:
    if not_derivable_reason(case.derivation) is not None:
        pytest.skip(f"not derivable: {not_derivable_reason(case.derivation)}")
    problem = check_derivation(case)
    assert problem is None, f"{where(suite, case)}: {problem}"


def test_every_case_has_a_derivation_or_a_reason() -> None:
    missing = [where(s, c) for s, c in CASES if c.derivation is None or not_derivable_reason(c.derivation) == ""]
    assert not missing, "cases without a derivation or a not_derivable reason:\n" + "\n".join(missing)
    underivable = [c for _, c in CASES if not_derivable_reason(c.derivation)]
    assert all(isinstance(c.answer, dict) and "regex" in c.answer for c in underivable), (
        "only answers that are not numbers or expressions (regex) may go without a derivation"
    )


def test_seed_problems_are_verbatim_with_their_true_answers() -> None:
    seed = next(suite for suite in SHIPPED if suite.name == "seed")
    by_prompt = {case.prompt: case for case in seed.cases}
    assert set(by_prompt) == set(SEED_PROMPTS)
    for prompt, true_answer in SEED_PROMPTS.items():
        case = by_prompt[prompt]
        kwargs = {"rel_tol": case.rel_tol, "unordered": case.unordered}
        assert check_answer(true_answer, case.answer, **kwargs).correct, prompt
        assert not check_answer(SEED_WRONG[prompt], case.answer, **kwargs).correct, prompt
        assert (case.temperature, case.top_p, case.repeats) == (0.6, 0.95, 10)
        assert (case.max_new_tokens, case.repetition_penalty) == (2048, 1.1)


def test_suites_are_broad_and_bilingual() -> None:
    curated = [case for suite, case in CASES if suite.name in TOPICS or suite.name == "seed"]
    assert len(curated) >= 100
    chinese = sum("zh" in case.tags for case in curated)
    assert 0.4 <= chinese / len(curated) <= 0.6, f"{chinese} of {len(curated)} cases are Chinese"
    assert {suite.name for suite in SHIPPED} >= set(TOPICS) | {"seed", "gsm8k-sample"}
    for suite, case in CASES:
        assert ("zh" in case.tags) != ("en" in case.tags), f"{where(suite, case)}: tag it zh or en"
        assert any(tag in case.tags for tag in DIFFICULTIES), f"{where(suite, case)}: no difficulty tag"
        assert "\\boxed{}" in case.template, f"{where(suite, case)}: the template must ask for \\boxed{{}}"
        assert ("zh" in case.tags) == ("请" in case.template), f"{where(suite, case)}: template language"
    for difficulty in DIFFICULTIES:
        assert any(difficulty in case.tags for case in curated), difficulty


def test_shipped_suites_are_for_every_model_but_the_demo_model() -> None:
    for suite in SHIPPED:
        assert suite.applies_to("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"), suite.path
        assert not suite.applies_to("mathperf-tiny"), suite.path


# derivations.py itself -----------------------------------------------------------------


def case(answer: object, derivation: object, **fields: object) -> Case:
    return Case(id="c", prompt="p", answer=answer, line=7, derivation=derivation, **fields)  # type: ignore[arg-type]


def test_a_wrong_expected_answer_is_caught() -> None:
    problem = check_derivation(case({"x": "25/7", "y": "20/7"}, {"solve": ["x + 2*y = 10", "3*x - y = 5"]}))
    assert problem is not None and "x = \\frac{20}{7}, y = \\frac{25}{7}" in problem
    assert check_derivation(case(7, {"expr": "2*3"})) is not None
    assert check_derivation(case(6, {"expr": "2*3"})) is None


def test_missing_and_empty_reasons_are_problems() -> None:
    assert "no derivation" in (check_derivation(case(1, None)) or "")
    assert check_derivation(case({"regex": "no"}, {"not_derivable": "  "})) is not None
    assert check_derivation(case({"regex": "no"}, {"not_derivable": "a yes/no answer"})) is None


@pytest.mark.parametrize(
    ("derivation", "expected"),
    [
        ({"let": {"r": 5}, "expr": {"面积": "pi*r**2", "周长": "2*pi*r"}}, "\\boxed{面积 = 25 \\pi, 周长 = 10 \\pi}"),
        ({"solve": ["x**2 - 5*x + 6 = 0"], "reduce": "list"}, "\\boxed{2, 3}"),
        ({"solve": ["x**2 = 4"], "where": "x > 0"}, "\\boxed{2}"),
        ({"solve": ["x**2 - 7*x + 3 = 0"], "expr": "x**3", "reduce": "sum"}, "\\boxed{280}"),
        ({"over": {"a": [1, 6], "b": [1, 6]}, "where": "a + b == 7", "reduce": "probability"}, "\\boxed{\\frac{1}{6}}"),
        ({"over": {"n": {"in": [2, 3, 5]}}, "expr": "n**2", "reduce": "max"}, "\\boxed{25}"),
        ({"recurrence": {"start": [1, 1], "next": "p + q", "n": 10}, "expr": ["term", "total"]}, "\\boxed{55, 143}"),
        ({"expr": "0.1 + 0.2"}, "\\boxed{\\frac{3}{10}}"),
        ({"expr": "integrate(x*exp(x), (x, 0, 1))"}, "\\boxed{1}"),
    ],
)
def test_derive(derivation: dict[str, object], expected: str) -> None:
    assert derive(derivation).rendered == expected


@pytest.mark.parametrize(
    ("derivation", "message"),
    [
        ({"expr": "().__class__"}, "not allowed"),
        ({"expr": "__import__('os')"}, "not allowed"),
        ({"expr": "(lambda: 1)()"}, "not allowed"),
        ({"expr": "open('x')"}, "not allowed"),
        # refused where an evaluation would never go: the first part decides, the second is never run
        ({"over": {"a": [1, 3]}, "where": "a > 0 or open('x')", "reduce": "count"}, "call open"),
        ({"expr": "foo + 1"}, "unknown name 'foo'"),
        ({"expr": "2**100000"}, "too large"),
        ({"expr": "x +"}, "cannot read"),
        ({"solve": ["x**2 = 4"]}, "ambiguous"),
        ({"solve": ["x + y = 1"]}, "not determined"),
        ({"solve": ["x**2 = -1"]}, "no solution"),
        ({"over": {"a": [1, 1000], "b": [1, 1000]}, "reduce": "count"}, "more than"),
        ({"expr": "1 < 2"}, "truth value"),
        ({"expr": "integrate(1/x, (x, -1, 1))"}, "undefined"),
        ({"solve": ["x == 1"]}, "one '='"),
        ({"expr": "1", "reduce": "median"}, "reduce"),
        ({"exprs": "1"}, "unknown derivation key"),
        ({"expr": "1", "solve": ["x = 1"], "over": {"a": [1, 2]}}, "not both"),
    ],
)
def test_bad_derivations_are_refused(derivation: dict[str, object], message: str) -> None:
    with pytest.raises(DerivationError, match=message.replace("(", r"\(")):
        derive(derivation)


def test_jsonl_cases_carry_their_derivation_in_the_record() -> None:
    suite = next(suite for suite in SHIPPED if suite.name == "gsm8k-sample")
    assert all(case.source is not None and case.derivation for case in suite.cases)


def test_render_shapes() -> None:
    import sympy

    assert render([sympy.Integer(17), sympy.Integer(19)]) == "\\boxed{17, 19}"
    assert render({"x": sympy.Rational(20, 7)}) == "\\boxed{x = \\frac{20}{7}}"
