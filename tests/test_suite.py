"""Suite loading: every schema problem is an error naming the file and the exact line, all of a file at once."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_mathperf.suite import load_suite
from pytest_mathperf.yamlfile import SchemaError

GOOD_CASE = """  - id: a
    prompt: "What is 1 + 1?"
    answer: 2
"""
GSM8K_REGEX = "'#### *(-?[\\d,.]+)'"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SchemaError) as raised:
        load_suite(path)
    return str(raised.value)


def test_a_valid_suite_loads_with_defaults_and_case_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "algebra.yaml",
        """
        description: Linear systems
        defaults:
          template: "{prompt}\\nPut the answer in \\\\boxed{}."
          temperature: 0.6
          repeats: 3
          tags: [zh]
        cases:
          - id: linear-system
            prompt: "已知 x + 2y = 10，3x - y = 5，求 x 和 y 的值。"
            answer: {x: "20/7", y: "25/7"}
            repeats: 10
        """,
    )
    suite = load_suite(path)
    assert suite.name == "algebra" and suite.models == ("*",)
    (case,) = suite.cases
    assert (case.line, case.repeats, case.temperature, case.tags) == (8, 10, 0.6, ("zh",))
    assert case.rendered_prompt().endswith("Put the answer in \\boxed{}.")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n   answer: 1\n",
            "s.yaml:5: YAML syntax error",
            id="yaml-syntax",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answer: [1, 2\n",
            "s.yaml:5: YAML syntax error: expected ',' or ']', but got '<stream end>'",
            id="bracket-open-at-the-end",  # where it opened, not the line after the file's last
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answer: [1,\n      2,\n",
            "s.yaml:6: YAML syntax error: expected the node content",
            id="trailing-comma-at-the-end",  # the file's last line, never one past it
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answr: 1\n",
            "s.yaml:5: unknown key 'answr' in a case; did you mean 'answer'?",
            id="unknown-key-suggestion",
        ),
        pytest.param(
            "suite: s\ndefualts: {}\ncases:\n" + GOOD_CASE,
            "s.yaml:2: unknown key 'defualts' in the suite; did you mean 'defaults'?",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n",
            "s.yaml:3: case is missing required field 'answer'",
            id="missing-field",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + GOOD_CASE.replace("- id: a", "- id: b") + GOOD_CASE,
            "s.yaml:9: duplicate case id 'a' (first on line 3)",
            id="duplicate-id-both-lines",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answer: 1\n    answer: 2\n",
            "s.yaml:6: YAML syntax error: duplicate key 'answer' (first on line 5)",
            id="duplicate-key",
        ),
        pytest.param(
            "suite: s\ndefaults:\n  template: 'no placeholder'\ncases:\n" + GOOD_CASE,
            "s.yaml:3: template: must contain {prompt}",
            id="template-without-prompt",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answer: {any_of: []}\n",
            "s.yaml:5: answer: {any_of: [...]} must be a non-empty list",
            id="bad-answer-form",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: a\n    prompt: hi\n    answer: [1, [2]]\n",
            "s.yaml:5: answer: list parts must be scalars",
            id="nested-list-answer",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    repeats: 0\n",
            "s.yaml:6: repeats: must be a whole number ≥ 1, got 0",
            id="repeats-zero",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    top_p: 1.5\n",
            "s.yaml:6: top_p: must be a number in (0, 1]",
            id="top-p-range",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    temperature: hot\n",
            "s.yaml:6: temperature: must be a number ≥ 0",
            id="temperature-type",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    tags: [zh-cn]\n",
            "s.yaml:6: tags: must be a list of tag names",
            id="tag-not-a-marker-name",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    pass_rule: most\n",
            "s.yaml:6: pass_rule: must be all | majority | any",
            id="pass-rule",
        ),
        pytest.param(
            "suite: s\ncases:\n" + GOOD_CASE + "    skip: true\n",
            "s.yaml:6: skip: give the reason as a string",
            id="skip-without-reason",
        ),
        pytest.param(
            "suite: s\ncases:\n  - id: 'a b'\n    prompt: hi\n    answer: 1\n",
            "s.yaml:3: id: 'a b' must use letters, digits and . _ - + only",
            id="bad-id",
        ),
        pytest.param("suite: s\ncases: 3\n", "s.yaml:2: cases: must be a list, got a number", id="cases-not-list"),
        pytest.param("suite: s\ncases: []\n", "s.yaml:1: the suite has no cases", id="no-cases"),
        pytest.param("- just\n- a list\n", "s.yaml:1: a suite file must be a mapping", id="not-a-mapping"),
    ],
)
def test_schema_errors_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    message = error_of(path)
    assert message.startswith(str(tmp_path / expected.split(":")[0]) + ":"), message
    assert expected.split(":", 1)[1] in message, message


# cases_from: JSONL imports ---------------------------------------------------------------


def jsonl(directory: Path, name: str, records: list[object | str]) -> Path:
    path = directory / name
    lines = [record if isinstance(record, str) else json.dumps(record, ensure_ascii=False) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def importing(directory: Path, name: str = "data.jsonl", extra: str = "") -> Path:
    """A suite importing ``name``; ``extra`` lines continue the cases_from block (line 9 on)."""
    path = directory / "gsm.yaml"
    path.write_text(
        "suite: gsm\n"
        "defaults:\n"
        "  tags: [en]\n"
        "cases_from:\n"
        f"  path: {name}\n"
        "  prompt: question\n"
        "  answer: answer\n"
        f"  answer_regex: {GSM8K_REGEX}\n" + extra + ("\n" if extra else ""),
        encoding="utf-8",
    )
    return path


def test_cases_from_imports_jsonl_with_the_answer_regex(tmp_path: Path) -> None:
    jsonl(
        tmp_path,
        "data.jsonl",
        [
            {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
            "",
            {"question": "A bill of $2,400 is paid in 2 parts. Each part?", "answer": "#### 1,200"},
            {"question": "It fell from 5 by 12 degrees. Now?", "answer": "5 - 12 = -7\n#### -7"},
        ],
    )
    suite = load_suite(importing(tmp_path, extra="  tags: [gsm8k]\n  limit: 3"))
    assert [(case.id, case.answer, case.line) for case in suite.cases] == [
        ("data-1", "7", 1),
        ("data-3", "1200", 3),
        ("data-4", "-7", 4),
    ]
    assert suite.cases[0].tags == ("en", "gsm8k")
    assert suite.cases[0].source == (tmp_path / "data.jsonl").resolve()


def test_cases_from_takes_ids_from_a_field_and_respects_limit(tmp_path: Path) -> None:
    records = [{"id": f"q{n}", "question": f"{n} + 1?", "answer": f"#### {n + 1}"} for n in range(5)]
    jsonl(tmp_path, "data.jsonl", records)
    suite = load_suite(importing(tmp_path, extra="  id: id\n  limit: 2"))
    assert [case.id for case in suite.cases] == ["q0", "q1"]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"qid": "q0", "question": "1 + 1?", "answer": "#### 2"}, "missing field 'id' (named in gsm.yaml)"),  # a misspelt field
        ({"id": "", "question": "1 + 1?", "answer": "#### 2"}, "field 'id': '' must use letters, digits and . _ - + only"),
        ({"id": "a::b[x]", "question": "1 + 1?", "answer": "#### 2"}, "field 'id': 'a::b[x]' must use letters"),
        ({"id": None, "question": "1 + 1?", "answer": "#### 2"}, "field 'id': None must use letters"),
    ],
)
def test_cases_from_ids_name_a_test_item_as_yaml_ids_do(tmp_path: Path, record: dict[str, object], problem: str) -> None:
    jsonl(tmp_path, "data.jsonl", [record])
    message = error_of(importing(tmp_path, extra="  id: id"))
    assert message.startswith(f"{(tmp_path / 'data.jsonl').resolve()}:1: "), message
    assert problem in message, message


def test_cases_from_missing_file_names_the_suite_line(tmp_path: Path) -> None:
    message = error_of(importing(tmp_path, name="nowhere.jsonl"))
    assert message.startswith(f"{tmp_path / 'gsm.yaml'}:5: cases_from: file not found"), message
    assert "nowhere.jsonl" in message


@pytest.mark.parametrize(
    ("records", "line", "problem"),
    [
        pytest.param([{"question": "q", "answer": "#### 1"}, '{"question": "q", "answer": '], 2, "not valid JSON", id="bad-json"),
        pytest.param([{"question": "q", "answer": "#### 1"}, "", {"question": "q"}], 3, "missing field 'answer' (named in gsm.yaml)", id="missing-field"),
        pytest.param([{"answer": "#### 1"}], 1, "missing field 'question'", id="missing-prompt"),
        pytest.param([{"question": "q", "answer": "#### 1"}, {"question": "q", "answer": "seven"}], 2, "answer_regex", id="regex-no-match"),
        pytest.param([[1, 2]], 1, "each line must be a JSON object", id="not-an-object"),
        pytest.param([{"question": 3, "answer": "#### 1"}], 1, "field 'question' must be a string", id="prompt-not-text"),
    ],
)
def test_cases_from_bad_records_name_the_jsonl_line(tmp_path: Path, records: list[object], line: int, problem: str) -> None:
    jsonl(tmp_path, "data.jsonl", records)
    message = error_of(importing(tmp_path))
    assert message.startswith(f"{(tmp_path / 'data.jsonl').resolve()}:{line}: "), message
    assert problem in message, message


def test_duplicate_ids_between_yaml_and_jsonl_name_the_jsonl_line(tmp_path: Path) -> None:
    jsonl(
        tmp_path,
        "data.jsonl",
        [{"id": "a", "question": "q", "answer": "#### 1"}, {"id": "b", "question": "q", "answer": "#### 2"}],
    )
    path = importing(tmp_path, extra="  id: id\ncases:\n" + GOOD_CASE.replace("- id: a", "- id: b"))
    message = error_of(path)
    assert message.startswith(f"{(tmp_path / 'data.jsonl').resolve()}:2: duplicate case id 'b'"), message
    assert f"{path}:11" in message, message


def test_cases_from_bad_block_names_the_suite_line(tmp_path: Path) -> None:
    path = write(tmp_path, "gsm.yaml", "suite: gsm\ncases_from:\n  path: data.jsonl\n  prompt: question\n  anwser: a\n")
    assert error_of(path).startswith(f"{path}:5: unknown key 'anwser' in cases_from; did you mean 'answer'?")
    jsonl(tmp_path, "data.jsonl", [{"question": "q", "answer": "#### 1"}])
    message = error_of(importing(tmp_path, extra="  limit: 0"))
    assert message.startswith(f"{tmp_path / 'gsm.yaml'}:9: limit: must be a whole number ≥ 1"), message


def test_models_globs_select_and_exclude(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text('models: ["*", "!mathperf-tiny"]\ncases:\n  - {id: a, prompt: p, answer: 1}\n', encoding="utf-8")
    suite = load_suite(path)
    assert suite.applies_to("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")
    assert not suite.applies_to("mathperf-tiny")
    path.write_text('models: ["!Qwen/*"]\ncases:\n  - {id: a, prompt: p, answer: 1}\n', encoding="utf-8")
    only_exclusions = load_suite(path)
    assert only_exclusions.applies_to("mathperf-tiny") and not only_exclusions.applies_to("Qwen/Qwen2.5-Math-1.5B")


def test_every_problem_in_a_file_is_reported_at_once_each_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "many.yaml",
        """
        suite: many
        colour: blue
        cases:
          - id: a
            prompt: "What is 1 + 1?"
            answr: 2
          - id: b
            prompt: "What is 2 + 2?"
            answer: 4
            budgets: {ttft_ms: {p50: {maxx: 5}}}
          - id: c
            prompt: "What is 3 + 3?"
            answer: 6
          - id: c
            prompt: "What is 4 + 4?"
            answer: 8
        """,
    )
    message = error_of(path)
    assert message.splitlines() == [
        f"{path}:2: unknown key 'colour' in the suite; allowed: suite, description, models, defaults, cases, cases_from, load, latency",
        f"{path}:6: unknown key 'answr' in a case; did you mean 'answer'?",
        f"{path}:10: unknown key 'maxx' in budgets.ttft_ms.p50; did you mean 'max'?",
        f"{path}:14: duplicate case id 'c' (first on line 11)",
    ]
