"""Answer extraction and equivalence, on realistic reasoning-model outputs in English and Chinese."""

from __future__ import annotations

import dataclasses
import itertools
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from pytest_mathperf.answers import Verdict, check_answer, format_expected, validate_expected

XY = {"x": "20/7", "y": "25/7"}
AREA_ZH = {"面积": "25\\pi", "周长": "10\\pi"}
AREA_EN = {"area": "25\\pi", "circumference": "10\\pi"}
BOOKS = {"科技书": 2, "文学书": 3}
FORMS = "a number, a string, a list, a mapping, {any_of: ...} or {regex: ...}"

R1_ALGEBRA = (
    "<think>\n好的，我需要解这个方程组。由第二个方程得 y = 3x - 5，代入第一个……\n</think>\n\n"
    "由 3x - y = 5 得 y = 3x - 5，代入 x + 2y = 10：\n"
    "x + 2(3x - 5) = 10，7x = 20，x = 20/7。\n"
    "y = 3·20/7 - 5 = 25/7。\n\n"
    "所以 x = \\frac{20}{7}，y = \\frac{25}{7}。\n\n"
    "\\boxed{x = \\frac{20}{7},\\ y = \\frac{25}{7}}"
)
R1_BOOKS = (
    "</think>\n设科技书 x 本，则文学书 (5 - x) 本。\n"
    "15x + 10(5 - x) = 60，解得 x = 2。\n"
    "所以科技书买了 2 本，文学书买了 3 本。"
)

# (id, output, expected, options, status, extracted)
CASES = [
    # --- the seed's linear system: x = 20/7, y = 25/7
    ("zh-r1-boxed-pair", R1_ALGEBRA, XY, {}, "correct", "x = \\frac{20}{7}, y = \\frac{25}{7}"),
    ("zh-fullwidth-equals-slash", "</think>\n所以 x＝20／7，y＝25／7。", XY, {}, "correct", "x = 20/7, y = 25/7"),
    ("zh-fullwidth-colon", "</think>\n答：x：20/7，y：25/7", XY, {}, "correct", "x = 20/7, y = 25/7"),
    (
        "en-tuple-form",
        "</think>\nThe solution is $(x, y) = \\left(\\frac{20}{7}, \\frac{25}{7}\\right)$.",
        XY,
        {},
        "correct",
        "x = \\frac{20}{7}, y = \\frac{25}{7}",
    ),
    (
        "en-equation-left-side-skipped",
        "</think>\nFrom 3x - y = 5 and x + 2y = 10 we get x = 20/7 and y = 25/7.",
        XY,
        {},
        "correct",
        "x = 20/7, y = 25/7",
    ),
    (
        "en-only-equations-no-answer",
        "</think>\nWe have x + 2y = 10 and 3x - y = 5.",
        XY,
        {},
        "no_answer",
        "We have x + 2y = 10 and 3x - y = 5",
    ),
    (
        "boxed-wrong-y",
        "</think>\n\\boxed{x = \\frac{20}{7}, y = \\frac{26}{7}}",
        XY,
        {},
        "wrong",
        "x = \\frac{20}{7}, y = \\frac{26}{7}",
    ),
    (
        "approx-decimals-default",
        "</think>\n\\boxed{x \\approx 2.857, y \\approx 3.571}",
        XY,
        {},
        "wrong",
        "x = 2.857, y = 3.571",
    ),
    (
        "approx-decimals-rel-tol",
        "</think>\n\\boxed{x \\approx 2.857, y \\approx 3.571}",
        XY,
        {"rel_tol": 1e-3},
        "correct",
        "x = 2.857, y = 3.571",
    ),
    (
        "seven-digit-decimals",
        "</think>\nx = 2.8571429, y = 3.5714286",
        XY,
        {},
        "correct",
        "x = 2.8571429, y = 3.5714286",
    ),
    (
        "zh-chained-equals",
        "</think>\n解得 x = 60/21 = 20/7，y = 75/21 = 25/7",
        XY,
        {},
        "correct",
        "x = 20/7, y = 25/7",
    ),
    (
        "zh-exact-then-approx",
        "</think>\n所以 x = 20/7 ≈ 2.857，y = 25/7 ≈ 3.571。",
        XY,
        {},
        "correct",
        "x = 20/7, y = 25/7",
    ),
    ("no-spaces", "</think>\nx=20/7,y=25/7", XY, {}, "correct", "x = 20/7, y = 25/7"),
    ("uppercase-names", "</think>\nX = 20/7, Y = 25/7", XY, {}, "correct", "x = 20/7, y = 25/7"),
    (
        "closing-words-after-answer",
        "</think>\n所以 x = 20/7，y = 25/7。\n\n希望对你有帮助！",
        XY,
        {},
        "correct",
        "x = 20/7, y = 25/7",
    ),
    (
        "unnamed-pair-not-guessed",
        "</think>\n\\boxed{\\left(\\frac{20}{7}, \\frac{25}{7}\\right)}",
        XY,
        {},
        "no_answer",
        "\\left(\\frac{20}{7}, \\frac{25}{7}\\right)",
    ),
    (
        "r1-boxes-inside-sentence",
        "</think>\n**Final Answer**\nThe values are"
        " \\( x = \\boxed{\\dfrac{20}{7}} \\) and \\( y = \\boxed{\\dfrac{25}{7}} \\).",
        XY,
        {},
        "correct",
        "x = \\dfrac{20}{7}, y = \\dfrac{25}{7}",
    ),
    (
        "cases-environment",
        "</think>\n\\[\\boxed{\\begin{cases} x = \\dfrac{20}{7} \\\\ y = \\dfrac{25}{7} \\end{cases}}\\]",
        XY,
        {},
        "correct",
        "x = \\dfrac{20}{7}, y = \\dfrac{25}{7}",
    ),
    (
        "aligned-environment",
        "</think>\n\\[\\begin{aligned} x &= \\frac{20}{7} \\\\ y &= \\frac{25}{7} \\end{aligned}\\]",
        XY,
        {},
        "correct",
        "x = \\frac{20}{7}, y = \\frac{25}{7}",
    ),
    (
        "tuple-for-a-list",
        "</think>\nThe solution is \\(\\boxed{(x, y) = \\left( \\frac{20}{7}, \\frac{25}{7} \\right)}\\)",
        ["20/7", "25/7"],
        {},
        "correct",
        "\\frac{20}{7}, \\frac{25}{7}",
    ),
    ("only-x-given", "</think>\n\\boxed{x = \\frac{20}{7}}", XY, {}, "wrong", "x = \\frac{20}{7}"),
    ("only-x-truncated", "</think>\nx = 20/7, y =", XY, {"truncated": True}, "truncated", "x = 20/7"),
    (
        "markdown-bullets",
        "</think>\n**Answer:**\n- x = 20/7\n- y = 25/7",
        XY,
        {},
        "correct",
        "x = 20/7, y = 25/7",
    ),
    (
        "answer-only-inside-think",
        "<think>所以 x = 20/7, y = 25/7</think>\n\n以上就是解题过程。",
        XY,
        {},
        "no_answer",
        None,
    ),
    (
        "open-think-truncated",
        "<think>\n设 x 为……所以 x = 20/7, y = 25/7",
        XY,
        {"truncated": True},
        "truncated",
        None,
    ),
    ("open-think-not-truncated", "<think>\n设 x 为……所以 x = 20/7, y = 25/7", XY, {}, "no_answer", None),
    # --- the seed's circle: area 25π cm², circumference 10π cm
    (
        "zh-geometry-named",
        "</think>\n面积 S = πr² = 25π cm²，周长 C = 2πr = 10π cm。",
        AREA_ZH,
        {},
        "correct",
        "面积 = 25\\pi, 周长 = 10\\pi",
    ),
    (
        "zh-geometry-list-units",
        "</think>\n答：面积为 25π 平方厘米，周长为 10π 厘米。",
        ["25\\pi", "10\\pi"],
        {},
        "correct",
        "25\\pi, 10\\pi",
    ),
    ("zh-geometry-seed-wording", "面积 25π cm²，周长 10π cm", AREA_ZH, {}, "correct", "面积 = 25\\pi, 周长 = 10\\pi"),
    (
        "en-geometry-two-boxes",
        "</think>\nArea: $\\boxed{25\\pi \\text{ cm}^2}$, circumference: $\\boxed{10\\pi \\text{ cm}}$",
        AREA_EN,
        {},
        "correct",
        "area = 25\\pi, circumference = 10\\pi",
    ),
    (
        "en-keys-zh-output-not-guessed",
        "面积 25π cm²，周长 10π cm",
        AREA_EN,
        {},
        "no_answer",
        "面积 25π cm², 周长 10π cm",
    ),
    (
        "geometry-wrong-circumference",
        "</think>\n面积为 25π cm²，周长为 5π cm。",
        AREA_ZH,
        {},
        "wrong",
        "面积 = 25\\pi, 周长 = 5\\pi",
    ),
    ("area-decimal-default", "</think>\n答：面积约为 78.54 cm²。", "25\\pi", {}, "wrong", "78.54"),
    ("area-decimal-rel-tol", "</think>\n答：面积约为 78.54 cm²。", "25\\pi", {"rel_tol": 1e-3}, "correct", "78.54"),
    ("expected-with-zh-unit", "</think>\n面积是 25π 平方厘米", "25π 平方厘米", {}, "correct", "25\\pi"),
    ("unicode-pi-with-unit", "</think>\n周长是 10π cm", "10\\pi", {}, "correct", "10\\pi"),
    (
        "en-pi-chain-words",
        "</think>\nThe area is $\\pi r^2 = \\pi \\cdot 5^2 = 25\\pi$ square centimeters.",
        "25\\pi",
        {},
        "correct",
        "25\\pi",
    ),
    # --- the seed's word problem: 2 science books, 3 literature books
    ("zh-books-named", "</think>\n答：科技书2本，文学书3本。", BOOKS, {}, "correct", "科技书 = 2, 文学书 = 3"),
    ("zh-books-list", "</think>\n答：科技书2本，文学书3本。", [2, 3], {}, "correct", "2, 3"),
    ("zh-books-r1-reasoning", R1_BOOKS, BOOKS, {}, "correct", "科技书 = 2, 文学书 = 3"),
    (
        "en-books-list",
        "</think>\nXiao Ming bought 2 science books and 3 literature books.",
        [2, 3],
        {},
        "correct",
        "2, 3",
    ),
    ("zh-books-in-box", "</think>\n\\boxed{科技书2本，文学书3本}", BOOKS, {}, "correct", "科技书 = 2, 文学书 = 3"),
    ("zh-books-in-box-list", "</think>\n\\boxed{科技书2本，文学书3本}", [2, 3], {}, "correct", "2, 3"),
    ("zh-books-swapped", "</think>\n答：科技书3本，文学书2本。", BOOKS, {}, "wrong", "科技书 = 3, 文学书 = 2"),
    ("zh-books-enumeration-comma", "</think>\n答：小明买了科技书 2 本、文学书 3 本。", [2, 3], {}, "correct", "2, 3"),
    # --- the seed's example: 17 and 19
    ("boxed-comma-pair", "</think>\n\\boxed{17, 19}", [17, 19], {}, "correct", "17, 19"),
    ("boxed-zh-and", "</think>\n\\boxed{17 和 19}", [17, 19], {}, "correct", "17, 19"),
    ("boxed-text-and", "</think>\n\\boxed{17 \\text{ and } 19}", [17, 19], {}, "correct", "17, 19"),
    (
        "two-boxes-two-parts",
        "</think>\n较小的数是 \\boxed{17}，较大的数是 \\boxed{19}。",
        [17, 19],
        {},
        "correct",
        "17, 19",
    ),
    ("reversed-order", "</think>\n\\boxed{19, 17}", [17, 19], {}, "wrong", "19, 17"),
    ("reversed-unordered", "</think>\n\\boxed{19, 17}", [17, 19], {"unordered": True}, "correct", "19, 17"),
    ("en-numbers-are", "</think>\nSo the two numbers are 17 and 19.", [17, 19], {}, "correct", "17, 19"),
    ("zh-respectively", "</think>\n两个数分别是17和19。", [17, 19], {}, "correct", "17, 19"),
    ("zh-therefore-pair", "</think>\n所以这两个数是 17 和 19。", [17, 19], {}, "correct", "17, 19"),
    ("comma-no-space-two-digits", "</think>\nThe answer is 17,19.", [17, 19], {}, "correct", "17, 19"),
    ("too-many-parts", "</think>\n\\boxed{17, 19, 21}", [17, 19], {}, "wrong", "17, 19, 21"),
    ("too-few-parts", "</think>\n\\boxed{17}", [17, 19], {}, "wrong", "17"),
    (
        "too-few-parts-truncated",
        "</think>\n\\boxed{17}, and the other one is",
        [17, 19],
        {"truncated": True},
        "truncated",
        "17",
    ),
    (
        "set-for-an-unordered-list",
        "</think>\n\\boxed{\\{19, 17\\}}",
        [17, 19],
        {"unordered": True},
        "correct",
        "19, 17",
    ),
    ("unordered-missing", "</think>\n\\boxed{17, 18}", [17, 19], {"unordered": True}, "wrong", "17, 18"),
    ("scalar-given-two", "</think>\n\\boxed{17, 19}", 17, {}, "wrong", "17, 19"),
    ("any-of-second", "</think>\n\\boxed{19}", {"any_of": [17, 19]}, {}, "correct", "19"),
    ("any-of-none", "</think>\n\\boxed{18}", {"any_of": [17, 19]}, {}, "wrong", "18"),
    (
        "any-of-list-alternatives",
        "</think>\n\\boxed{-19, -17}",
        {"any_of": [[17, 19], [-19, -17]]},
        {},
        "correct",
        "-19, -17",
    ),
    ("any-of-no-answer", "</think>\nI am not sure.", {"any_of": [17, 19]}, {}, "no_answer", None),
    # --- boxes
    (
        "later-box-overrides",
        "</think>\nFirst guess \\boxed{5}. Wait, recheck: \\boxed{7}",
        7,
        {},
        "correct",
        "7",
    ),
    (
        "later-wrong-box-wins",
        "</think>\n\\boxed{7}\nHmm, actually the answer is \\boxed{8}.",
        7,
        {},
        "wrong",
        "8",
    ),
    (
        "nested-braces",
        "</think>\n\\boxed{\\frac{\\sqrt{2}}{2}}",
        "\\frac{1}{\\sqrt{2}}",
        {},
        "correct",
        "\\frac{\\sqrt{2}}{2}",
    ),
    ("fbox", "</think>\n\\fbox{42}", 42, {}, "correct", "42"),
    ("box-in-think-ignored", "<think>\\boxed{5}</think>\n\\boxed{6}", 5, {}, "wrong", "6"),
    ("empty-box-echoed", "</think>\n请把答案写在 \\boxed{} 中。答案是 12", 12, {}, "correct", "12"),
    ("boxed-equation", "</think>\n\\boxed{x = \\frac{20}{7}}", "20/7", {}, "correct", "\\frac{20}{7}"),
    ("dfrac", "</think>\n\\boxed{\\dfrac{20}{7}}", "20/7", {}, "correct", "\\dfrac{20}{7}"),
    # --- answer phrases and last lines
    ("en-the-answer-is", "</think>\nThe answer is 42.", 42, {}, "correct", "42"),
    ("en-final-answer-colon", "</think>\nFinal answer: 42", 42, {}, "correct", "42"),
    ("en-final-answer-heading", "</think>\n**Final Answer**\n\n42", 42, {}, "correct", "42"),
    ("en-answer-then-check", "</think>\nThe answer is 17.\nCheck: 17 + 19 = 36", 17, {}, "correct", "17"),
    ("en-answer-because", "</think>\nThe answer is 17 because 17 + 19 = 36.", 17, {}, "correct", "17"),
    ("zh-answer-is-fullwidth-colon", "</think>\n答案是：42", 42, {}, "correct", "42"),
    ("zh-answer-wei", "</think>\n答案为 42", 42, {}, "correct", "42"),
    ("zh-da-with-unit-ge", "</think>\n答：一共有 42 个。", 42, {}, "correct", "42"),
    ("zh-final-answer-yuan", "</think>\n最终答案：120 元", 120, {}, "correct", "120"),
    ("zh-suoyi-ge", "</think>\n所以共有 12 个。", 12, {}, "correct", "12"),
    ("zh-mi", "</think>\n答：路长 300 米。", 300, {}, "correct", "300"),
    ("en-so-x-equals", "</think>\n3x - y = 5 so x = 20/7", "20/7", {}, "correct", "20/7"),
    ("en-therefore-boxed", "</think>\nTherefore, the sum is $\\boxed{36}$.", 36, {}, "correct", "36"),
    ("en-speed-km-h", "</think>\nThe speed is 45 km/h.", 45, {}, "correct", "45"),
    ("en-closing-line-skipped", "</think>\nSo x = 42.\n\nHope this helps!", 42, {}, "correct", "42"),
    ("no-think-tags", "Adding both: 2n + 2 = 36, so n = 17.\nThe answer is 17.", 17, {}, "correct", "17"),
    # --- numbers
    ("boxed-negative", "</think>\n\\boxed{-663}", -663, {}, "correct", "-663"),
    ("unicode-minus", "</think>\n答案是 −663", -663, {}, "correct", "-663"),
    ("fullwidth-minus-digits", "</think>\n答案是－６６３", -663, {}, "correct", "-663"),
    ("negative-sign-dropped", "</think>\n\\boxed{663}", -663, {}, "wrong", "663"),
    ("fullwidth-digits-box", "</think>\n\\boxed{１７}", 17, {}, "correct", "17"),
    ("thousands-comma", "</think>\nThe answer is 1,234.", 1234, {}, "correct", "1234"),
    ("thousands-two-groups", "</think>\n\\boxed{1,234,567}", 1234567, {}, "correct", "1234567"),
    ("latex-thousands", "</think>\n\\boxed{1{,}234}", 1234, {}, "correct", "1234"),
    ("zh-comma-is-a-separator", "</think>\n答案是 17，190", [17, 190], {}, "correct", "17, 190"),
    ("decimal-equals-fraction", "</think>\n\\boxed{0.5}", "\\frac{1}{2}", {}, "correct", "0.5"),
    ("float-expected", "</think>\n\\boxed{\\frac{5}{2}}", 2.5, {}, "correct", "\\frac{5}{2}"),
    ("percent-is-a-unit", "</think>\nThe answer is 25%.", 25, {}, "correct", "25"),
    ("latex-percent", "</think>\n\\boxed{25\\%}", 25, {}, "correct", "25"),
    ("degrees-circ", "</think>\n\\boxed{60^\\circ}", 60, {}, "correct", "60"),
    ("degrees-symbol", "</think>\n所以这个角为 60°。", 60, {}, "correct", "60"),
    ("boxed-unit-text", "</think>\n\\boxed{25\\pi\\ \\text{cm}^2}", "25\\pi", {}, "correct", "25\\pi"),
    ("sqrt-forms", "</think>\n\\boxed{2\\sqrt{2}}", "\\sqrt{8}", {}, "correct", "2\\sqrt{2}"),
    ("unicode-sqrt", "</think>\n答案是 2√2", "2\\sqrt{2}", {}, "correct", "2\\sqrt2"),
    ("pi-rel-tol", "</think>\n\\boxed{3.14}", "\\pi", {"rel_tol": 1e-3}, "correct", "3.14"),
    ("pi-default-tol", "</think>\n\\boxed{3.14}", "\\pi", {}, "wrong", "3.14"),
    ("integers-exact", "</think>\n\\boxed{1000001}", 1000000, {}, "wrong", "1000001"),
    ("expression-commuted", "</think>\n\\boxed{2x + 1}", "1 + 2x", {}, "correct", "2x + 1"),
    ("small-binomial", "</think>\n\\boxed{\\binom{5}{2}}", 10, {}, "correct", "\\binom{5}{2}"),
    ("interval-one-part", "</think>\n\\boxed{(1, 2]}", "(1, 2]", {}, "correct", "(1, 2]"),
    # --- regex
    ("regex-on-box", "</think>\n\\boxed{ABC}", {"regex": "^[A-D]+$"}, {}, "correct", "ABC"),
    ("regex-no-match", "</think>\nThe answer is 17.", {"regex": "^\\d{3}$"}, {}, "wrong", "17"),
    (
        "regex-post-think-text",
        "<think>17? 19?</think>\nThe two primes are 17 and 19",
        {"regex": "17.*19"},
        {},
        "correct",
        "The two primes are 17 and 19",
    ),
    ("regex-fullwidth-folded", "</think>\n答案是 １７", {"regex": "^17$"}, {}, "correct", "17"),
    # --- truncation and no answer
    (
        "truncated-complete-box",
        "</think>\n\\boxed{42} and to double-check, 6 times",
        42,
        {"truncated": True},
        "correct",
        "42",
    ),
    ("truncated-complete-wrong", "</think>\n\\boxed{41}", 42, {"truncated": True}, "wrong", "41"),
    (
        "truncated-before-answer",
        "</think>\nLet me write the final answer:",
        42,
        {"truncated": True},
        "truncated",
        None,
    ),
    ("polite-no-answer", "<think>x = 42</think>\n\nI hope this helps!", 42, {}, "no_answer", None),
    ("empty-output", "", 42, {}, "no_answer", None),
]


@pytest.mark.parametrize(
    ("output", "expected", "options", "status", "extracted"),
    [pytest.param(*row[1:], id=row[0]) for row in CASES],
)
def test_check_answer(
    output: str, expected: object, options: dict, status: str, extracted: str | None
) -> None:
    verdict = check_answer(output, expected, **options)
    assert (verdict.status, verdict.extracted) == (status, extracted), verdict.reason
    assert verdict.reason and "\n" not in verdict.reason
    assert verdict.correct == (status == "correct")


def test_the_table_is_large_and_ids_are_unique() -> None:
    ids = [row[0] for row in CASES]
    assert len(ids) >= 80
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("output", "expected", "options", "reason"),
    [
        pytest.param("</think>\n\\boxed{x = 2.5, y = 25/7}", XY, {}, "x: 2.5 ≠ 20/7", id="named-part"),
        pytest.param("</think>\n\\boxed{17, 18}", [17, 19], {}, "part 2: 18 ≠ 19", id="list-part"),
        pytest.param(
            "</think>\n\\boxed{17, 18}",
            [17, 19],
            {"unordered": True},
            "19 missing (got 17, 18, any order)",
            id="unordered",
        ),
        pytest.param(
            "</think>\n\\boxed{17}",
            [17, 19],
            {},
            "expected 2 parts (17, 19), got 1: 17",
            id="count",
        ),
        pytest.param(
            "</think>\n\\boxed{17, 19}",
            17,
            {},
            "expected one value (17), got 2: 17, 19",
            id="scalar-count",
        ),
        pytest.param(
            "</think>\n\\boxed{x = \\frac{20}{7}}",
            XY,
            {},
            "y: not found (got x = \\frac{20}{7})",
            id="missing-name",
        ),
        pytest.param(
            "</think>\n\\boxed{18}",
            {"any_of": [17, 19]},
            {},
            "18 matches none of: 17 | 19",
            id="any-of",
        ),
        pytest.param("</think>\n\\boxed{2.857}", "20/7", {}, "2.857 ≠ 20/7", id="tolerance"),
        pytest.param("</think>\n\\boxed{20/7}", "20/7", {}, "matches 20/7", id="correct-scalar"),
        pytest.param(
            "</think>\n\\boxed{19}",
            {"any_of": [17, 19]},
            {},
            "alternative 2 of 2: matches 19",
            id="correct-any-of",
        ),
        pytest.param(
            "</think>\nThe answer is 17.",
            {"regex": "^\\d{3}$"},
            {},
            "final answer '17' does not match /^\\d{3}$/",
            id="regex",
        ),
        pytest.param(
            "<think>x = 42</think>\nI hope this helps!",
            42,
            {},
            "no \\boxed{}, 'the answer is' or final line with a value found after </think>",
            id="no-answer",
        ),
        pytest.param("<think>x = 4", 42, {}, "<think> was opened but never closed", id="open-think"),
        pytest.param(
            "<think>x = 4",
            42,
            {"truncated": True},
            "hit max_new_tokens inside <think> (no </think>)",
            id="truncated",
        ),
        pytest.param(
            "面积 25π cm²，周长 10π cm",
            AREA_EN,
            {},
            "no 'area = …' or 'circumference = …' found"
            " in the final answer '面积 25π cm², 周长 10π cm' or elsewhere",
            id="names-not-translated",
        ),
    ],
)
def test_reasons_name_what_went_wrong(output: str, expected: object, options: dict, reason: str) -> None:
    assert check_answer(output, expected, **options).reason == reason


def test_negative_rel_tol_is_refused() -> None:
    with pytest.raises(ValueError, match="rel_tol must be a number >= 0, got -0.1"):
        check_answer("\\boxed{17}", 17, rel_tol=-0.1)


def test_verdict_error_is_not_correct() -> None:
    verdict = Verdict.error("CUDA out of memory")
    assert verdict == Verdict("error", None, "CUDA out of memory")
    assert not verdict.correct


def test_verdict_is_frozen() -> None:
    verdict = Verdict("correct", "17", "matches 17")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.status = "wrong"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("expected", "text"),
    [
        pytest.param(17, "17", id="int"),
        pytest.param(2.857, "2.857", id="float"),
        pytest.param(1e-05, "0.00001", id="small-float"),
        pytest.param("\\frac{20}{7}", "\\frac{20}{7}", id="latex"),
        pytest.param([17, 19], "17, 19", id="list"),
        pytest.param(XY, "x = 20/7, y = 25/7", id="mapping"),
        pytest.param(BOOKS, "科技书 = 2, 文学书 = 3", id="mapping-zh"),
        pytest.param({"any_of": [17, 19]}, "any of: 17 | 19", id="any-of"),
        pytest.param({"any_of": [[17, 19], [-19, -17]]}, "any of: 17, 19 | -19, -17", id="any-of-lists"),
        pytest.param({"regex": "^\\d+$"}, "regex: ^\\d+$", id="regex"),
    ],
)
def test_format_expected(expected: object, text: str) -> None:
    assert format_expected(expected) == text


@pytest.mark.parametrize(
    "expected",
    [
        pytest.param(17, id="int"),
        pytest.param(-2.5, id="float"),
        pytest.param("\\frac{20}{7}", id="latex"),
        pytest.param("10π", id="unicode-pi"),
        pytest.param("25π cm²", id="with-unit"),
        pytest.param("y = 2x + 1", id="equation"),
        pytest.param("25\\pi", id="latex-pi"),
        pytest.param([17, 19], id="list"),
        pytest.param(XY, id="mapping"),
        pytest.param(AREA_ZH, id="mapping-zh"),
        pytest.param({"any_of": [17, [17, 19], {"regex": "^1"}]}, id="any-of"),
        pytest.param({"regex": "^\\d+$"}, id="regex"),
    ],
)
def test_validate_expected_accepts(expected: object) -> None:
    assert validate_expected(expected) is None


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        pytest.param(
            None,
            f"answer: expected {FORMS}, got empty",
            id="none",
        ),
        pytest.param(
            True,
            f"answer: expected {FORMS}, got the boolean True",
            id="bool",
        ),
        pytest.param("", "answer: is empty", id="empty-string"),
        pytest.param(math.nan, "answer: nan is not a finite number", id="nan"),
        pytest.param(
            "\\frac{20}{",
            "answer: '\\\\frac{20}{' is not a number or LaTeX expression that can be read",
            id="unreadable",
        ),
        pytest.param([], "answer: list of parts is empty", id="empty-list"),
        pytest.param([17, [19]], "answer: list parts must be scalars (part 2 is a list)", id="nested-list"),
        pytest.param({}, "answer: mapping of named parts is empty", id="empty-mapping"),
        pytest.param(
            {"x": [1, 2]},
            "answer: mapping parts must be scalars (part 'x' is a list)",
            id="mapping-list",
        ),
        pytest.param(
            {1: "2"},
            "answer: mapping keys must be part names (strings), got 1",
            id="mapping-int-key",
        ),
        pytest.param(
            {"any_of": []},
            "answer: {any_of: [...]} must be a non-empty list of answers",
            id="any-of-empty",
        ),
        pytest.param(
            {"any_of": [17], "x": 1},
            "answer: {any_of: [...]} takes no other keys (got any_of, x)",
            id="any-of-extra",
        ),
        pytest.param(
            {"any_of": [17, []]},
            "answer: any_of[1]: list of parts is empty",
            id="any-of-bad-alternative",
        ),
        pytest.param(
            {"regex": "^\\d+$", "x": 1},
            "answer: {regex: ...} takes no other keys (got regex, x)",
            id="regex-extra",
        ),
        pytest.param({"regex": 17}, "answer: {regex: ...} must be a non-empty string", id="regex-not-string"),
    ],
)
def test_validate_expected_rejects(expected: object, problem: str) -> None:
    assert validate_expected(expected) == problem


def test_invalid_regex_names_the_pattern() -> None:
    problem = validate_expected({"regex": "(17"})
    assert problem is not None
    assert problem.startswith("answer: {regex: '(17'} is not a valid regular expression: missing )")


def test_check_answer_rejects_an_invalid_expected_form() -> None:
    with pytest.raises(ValueError, match="answer: list of parts is empty"):
        check_answer("\\boxed{17}", [])


@pytest.mark.parametrize(
    "output",
    [
        pytest.param("</think>\n\\boxed{9^{9^{9^{9}}}}", id="power-tower"),
        pytest.param("</think>\n\\boxed{10^{10^{10}}}", id="huge-exponent"),
        pytest.param("</think>\n\\boxed{(10^{9})!}", id="huge-factorial"),
        pytest.param("</think>\n\\boxed{\\sum_{i=1}^{10^{9}} \\sin(i)}", id="sum"),
        pytest.param("</think>\n\\boxed{\\binom{1000000000}{500000000}}", id="binomial"),
        pytest.param("</think>\n\\boxed{1000000000 \\choose 500000000}", id="choose"),
        pytest.param("</think>\n\\boxed{\\gcd(9^{9^{9}}, 3)}", id="gcd-of-a-tower"),
        pytest.param("</think>\n\\boxed{(x + 1)^{10000}}", id="symbolic-power"),
        pytest.param("</think>\nThe answer is " + "9" * 5000, id="long-number"),
        pytest.param("</think>\n" + "1 + " * 25_000 + "1", id="100k-expression"),
        pytest.param("</think>\n" + "\\boxed{" * 20_000, id="unclosed-boxes"),
        pytest.param("</think>\n" + "{" * 50_000 + "\\boxed{1}" + "}" * 50_000, id="deep-braces"),
        pytest.param("</think>\n" + "x = 1, " * 15_000, id="many-names"),
        pytest.param("<think>" + "wait, " * 20_000, id="100k-think"),
        # a model looping on a unit near max_new_tokens: "cm" is a unit and a word, 2ⁿ ways to split
        pytest.param("</think>\n面积是 25" + " cm" * 60 + " (", id="repeated-unit"),
        pytest.param("</think>\nThe area is 25" + " cm²" * 60 + " c", id="repeated-squared-unit"),
    ],
)
def test_pathological_outputs_get_a_verdict(output: str) -> None:
    # bounded by input caps, not by a clock: a timed assertion would flake on a busy runner
    verdict = check_answer(output, {"x": 1, "y": 2} if "x = 1" in output else 42, truncated=True)
    assert verdict.status in {"wrong", "truncated", "no_answer"}


def test_power_tower_is_unreadable_not_a_hang() -> None:
    verdict = check_answer("</think>\n\\boxed{9^{9^{9^{9}}}}", 5)
    assert verdict == Verdict(
        "wrong", "9^{9^{9^{9}}}", "9^{9^{9^{9}}} is not a value that can be read or evaluated (expected 5)"
    )


def test_works_from_a_worker_thread() -> None:
    # Values no other test parses, so math-verify really runs in the thread (no cache hit).
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(
            pool.map(
                lambda output: check_answer(output, {"a": "\\frac{123}{457}", "b": "3\\sqrt{11}"}),
                ["</think>\n\\boxed{a = 123/457, b = \\sqrt{99}}", "</think>\na = 0.5, b = 3\\sqrt{11}"],
            )
        )
    assert [verdict.status for verdict in verdicts] == ["correct", "wrong"]
    assert verdicts[1].reason == "a: 0.5 ≠ \\frac{123}{457}"


def test_import_loads_neither_torch_nor_sympy() -> None:
    code = (
        "import sys, pytest_mathperf.answers\n"
        "print(sorted({'torch', 'sympy', 'math_verify'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_plain_numbers_are_checked_without_sympy() -> None:
    # Most answers are integers and decimals: a gate on them need not import sympy (half a second).
    code = (
        "import sys\n"
        "from pytest_mathperf.answers import check_answer, validate_expected\n"
        "assert validate_expected(42) is None and validate_expected('-3.50') is None\n"
        "print(check_answer('<think>6*7</think>The answer is \\\\boxed{42}.', 42).status)\n"
        "print(check_answer('\\\\boxed{3.5} m', '3.50 m').status)\n"
        "print(check_answer('\\\\boxed{41}', 42).status)\n"
        "print(sorted({'sympy', 'math_verify'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["correct", "correct", "wrong", "[]"]


PLAIN = ["0", "7", "-7", "+7", "007", "42", "42.0", "41.99999", "42.00001", "0.5", "0.50", "-0.5", "1.5", "2.5",
         "3.14159", "3.1416", "100", "1000000", "999999", "1000000.5", "0.000001", "0.0000011", "12345678901234567890"]


@pytest.mark.parametrize("rel_tol", [None, 1e-3, 0.05])
def test_plain_numbers_compare_as_the_sympy_path_does(rel_tol: float | None) -> None:
    from pytest_mathperf.answers.equality import _equal, _equal_plain, _parse_value, _plain_number

    for expected, got in itertools.product(PLAIN, PLAIN):
        plain = _equal_plain(_plain_number(expected), _plain_number(got), rel_tol)
        assert plain == _equal(_parse_value(expected), _parse_value(got), rel_tol), (expected, got, rel_tol)


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        # two boxes joined as one answer: the extraneous root is part of it, and a teacher marks it wrong
        ("解得 $x=\\boxed{1}$ 或 $x=\\boxed{6}$。", "6", "wrong"),
        ("So $\\boxed{1}$ and $\\boxed{6}$.", "6", "wrong"),
        ("\\boxed{2} 和 \\boxed{3}", ["2", "3"], "correct"),
        ("x=\\boxed{-2} or x=\\boxed{1} or x=\\boxed{6}", ["1", "6"], "wrong"),  # three roots given for two
        ("x = \\boxed{2}, y = \\boxed{3}", {"x": "2", "y": "3"}, "correct"),
        # a box after other words corrects the earlier one: the last box is the answer
        ("\\boxed{5}. Wait, that is wrong: the answer is \\boxed{6}.", "6", "correct"),
        ("First guess \\boxed{5}\n\nRechecking, \\boxed{6}", "6", "correct"),
    ],
)
def test_boxes_written_as_one_answer_are_read_together(output: str, expected: object, status: str) -> None:
    assert check_answer(output, expected).status == status


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        # the words between two numbers keep them apart: never read as 1200
        ("答：1小时可以加工200个零件。", "1200", "wrong"),
        ("答：面积是25π平方厘米。", "25\\pi", "correct"),
        ("答：共有 3 种方法。", "3", "correct"),
        # mixed numbers in plain text and in Chinese are a whole number plus a fraction
        ("It takes 2 1/2 hours.", "5/2", "correct"),
        ("It takes 2 1/2 hours.", "3/2", "wrong"),
        ("答：需要 2又1/2 小时。", "5/2", "correct"),
    ],
)
def test_numbers_in_a_sentence_keep_their_own_values(output: str, expected: str, status: str) -> None:
    assert check_answer(output, expected).status == status


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        ("\\boxed{0.000001}", "1e-6", "correct"),  # YAML reads `answer: 1e-6` as text: 10⁻⁶, not e − 6
        ("\\boxed{e-6}", "1e-6", "wrong"),
        ("\\boxed{6.02 \\times 10^{23}}", "6.02e23", "correct"),
        ("\\boxed{1.5e3}", "1500", "correct"),
        ("\\boxed{6.02e23}", "6.02e23", "correct"),  # the same on both sides
        ("\\boxed{1e-6}", "1e-6", "correct"),
    ],
)
def test_scientific_notation_is_a_power_of_ten(output: str, expected: str, status: str) -> None:
    assert check_answer(output, expected).status == status


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        # an exact value, then the same value rounded, is one answer
        ("答：圆的面积是25π平方厘米，约等于78.5平方厘米。", "25\\pi", "correct"),
        ("答：圆的面积是25π平方厘米，约等于78.5平方厘米。", "78.5", "correct"),
        ("So x = 20/7, or approximately 2.857.", "20/7", "correct"),
        ("So x = 20/7 (about 2.86).", "20/7", "correct"),
        ("So x = 20/7 (about 2.86).", "3", "wrong"),
        # each value of a list rounded is a value of its own
        ("The solutions are approximately 0.38 and approximately 2.62", ["0.38", "2.62"], "correct"),
    ],
)
def test_a_value_restated_rounded_is_one_answer(output: str, expected: object, status: str) -> None:
    assert check_answer(output, expected).status == status


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("所以这两个数是17和19。\n检验：17+19=36，符合题意。", ["17", "19"]),
        ("So x = 2.\nCheck: 30 * 2 = 60 ✓", "2"),
        ("So x = 2.\nVerify: 2 + 3 = 5.", "2"),
        ("解得 x=1。\n检验：x=1 时分母为 0，是增根，所以 x=3", "3"),  # a check that concludes gives the answer
        ("Checking each case, we get 5.", "5"),
    ],
)
def test_a_check_line_after_the_answer_is_not_the_answer(output: str, expected: object) -> None:
    assert check_answer(output, expected).status == "correct"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("答：他需要付 30（元）。", "30"),  # a unit in brackets, as Chinese textbooks write it
        ("60÷15=4（本）", "4"),
        ("答：面积是25π (cm²)。", "25\\pi"),
        ("答：速度为60千米/时。", "60"),  # a compound unit in Chinese
        ("答：共花了￥60。", "60"),
        ("温度是-3℃。", "-3"),
        ("\\boxed{25^{\\circ}\\mathrm{C}}", "25"),
        ("\\boxed{f(x)}", "f(x)"),  # brackets that hold no unit stay
        ("\\boxed{\\sin(t)}", "\\sin(t)"),
    ],
)
def test_units_as_people_write_them_are_no_part_of_the_value(output: str, expected: str) -> None:
    assert check_answer(output, expected).status == "correct"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("\\boxed{f(s)}", "f(t)"),  # a variable in brackets is no unit
        ("\\boxed{2}", "2m^2"),  # nor is a letter written against a number
        ("\\boxed{v_0 + a t}", "v_0 + a"),
    ],
)
def test_letters_that_could_be_units_are_not_dropped_from_algebra(output: str, expected: str) -> None:
    assert check_answer(output, expected).status == "wrong"
    assert validate_expected(expected) is None


@pytest.mark.parametrize(
    ("output", "expected", "status"),
    [
        # a system written with a left brace is its rows, never a matrix
        ("\\boxed{\\left\\{\\begin{array}{l}x=2\\\\y=3\\end{array}\\right.}", ["2", "3"], "correct"),
        ("解得 $\\left\\{\\begin{array}{l}x=\\frac{20}{7}\\\\y=\\frac{25}{7}\\end{array}\\right.$", {"x": "20/7", "y": "25/7"}, "correct"),
        ("解得 $\\left\\{\\begin{array}{l}x=\\frac{20}{7}\\\\y=\\frac{25}{7}\\end{array}\\right.$", {"x": "20/7", "y": "3"}, "wrong"),
        ("\\boxed{\\begin{array}{cc}1&2\\\\3&4\\end{array}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "correct"),  # still a matrix
    ],
)
def test_a_system_in_a_left_brace_is_its_rows(output: str, expected: object, status: str) -> None:
    assert check_answer(output, expected).status == status
