"""The labelled answer corpus (tests/data/answer_corpus/*.yaml): every label is asserted.

Each case is an output, the expected answer a suite would hold, the check's options and the
verdict a careful human grader gives. A case the checker is known to get wrong carries
``known: <reason>``; it is asserted to still disagree (so a fix is noticed) and is counted
against the agreement floor.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_mathperf.answers import check_answer, validate_expected

CORPUS = Path(__file__).parent / "data" / "answer_corpus"
FIELDS = {"id", "kind", "output", "expected", "options", "verdict", "why", "known"}
VERDICTS = {"correct", "wrong", "no_answer", "truncated"}
#: Every kind of answer the checker must handle has cases of its own.
KINDS = {
    "choice", "yes_no", "text", "multi_box", "interval", "thousands", "matrix", "equation", "verb",
    "zh_number", "plus_minus", "undefined", "percent", "expected_form", "boxed", "fraction", "pi",
    "units", "multi_part", "named", "any_of", "regex", "think", "truncated", "trap",
    "hedge", "letters", "choice_prose", "bare_box", "language", "latin_in_zh", "after_answer",
    "set_parts", "trig_degrees", "expr_tolerance", "clock", "label", "repeating",
}


def load_corpus() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
            cases.append({"options": {}, **case, "file": path.name})
    return cases


CASES = load_corpus()


@pytest.mark.parametrize("case", [pytest.param(case, id=case["id"]) for case in CASES])
def test_corpus_label(case: dict[str, Any]) -> None:
    verdict = check_answer(case["output"], case["expected"], **case["options"])
    if "known" in case:
        assert verdict.status != case["verdict"], f"fixed? remove `known:` from {case['id']}"
    else:
        assert verdict.status == case["verdict"], f"{case['why']} — {verdict.reason}"


def test_corpus_is_well_formed() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) >= 400
    assert [item for item, count in Counter(ids).items() if count > 1] == []
    for case in CASES:
        assert set(case) - {"file"} <= FIELDS, case["id"]
        assert {"id", "kind", "output", "expected", "verdict", "why"} <= set(case), case["id"]
        assert case["verdict"] in VERDICTS, case["id"]
        assert case["kind"] in KINDS, case["id"]
        assert validate_expected(case["expected"]) is None, case["id"]


def test_every_kind_has_cases_that_pass_and_cases_that_fail() -> None:
    by_kind: dict[str, Counter[str]] = {}
    for case in CASES:
        by_kind.setdefault(case["kind"], Counter())[case["verdict"] == "correct"] += 1
    assert set(by_kind) == KINDS
    for kind, counts in by_kind.items():
        assert counts[True] >= 1 and counts[False] >= 1, kind


def test_chinese_and_english() -> None:
    chinese = sum(1 for case in CASES if any("\u4e00" <= char <= "\u9fff" for char in case["output"]))
    assert chinese >= 100
    assert len(CASES) - chinese >= 200


def test_agreement_is_at_least_99_percent() -> None:
    known = [case["id"] for case in CASES if "known" in case]
    assert 1 - len(known) / len(CASES) >= 0.99, known
