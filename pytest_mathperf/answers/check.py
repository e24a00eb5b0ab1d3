"""The public check: one `Verdict` per generation, by the expected answer's form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pytest_mathperf.answers.deadline import ANSWER_CHECK_LIMIT_S, CheckTimedOut, search, time_limit
from pytest_mathperf.answers.equality import (
    DEFAULT_PERCENT,
    PERCENT_RULES,
    Comparison,
    PercentRule,
    _equal_text,
    _expected_math,
    _parse_value,
    _plain_number,
)
from pytest_mathperf.answers.expected import _display_scalar, _expected_text, format_expected, validate_expected
from pytest_mathperf.answers.extract import MAX_OUTPUT_CHARS, _Reading
from pytest_mathperf.answers.hedge import hedge_in
from pytest_mathperf.answers.prose import function_rules, holds_value, is_letter_expression, opens_with_chinese
from pytest_mathperf.answers.text import TextAnswer, matches, no_value_answer, text_answer, text_candidate
from pytest_mathperf.answers.units import conversion, unit_at_end
from pytest_mathperf.answers.values import (
    _clean_value,
    _math_text,
    answer_parts,
    both_roots,
    is_group,
    set_elements,
    shown,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

VerdictStatus = Literal["correct", "wrong", "no_answer", "truncated", "error"]


@dataclass(frozen=True)
class Verdict:
    """The judgement of one generation, with what was read and why, for people and reports."""

    status: VerdictStatus
    extracted: str | None
    reason: str

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @classmethod
    def error(cls, reason: str) -> Verdict:
        """A generation the backend failed to produce (OOM, timeout, HTTP error)."""
        return cls("error", None, reason)


def check_answer(
    output: str,
    expected: object,
    *,
    rel_tol: float | None = None,
    unordered: bool = False,
    truncated: bool = False,
    percent: PercentRule = DEFAULT_PERCENT,
    time_limit_s: float | None = None,
) -> Verdict:
    """Judge one generation's `output` against the suite's `expected` answer.

    A check that takes longer than `time_limit_s` (default ``ANSWER_CHECK_LIMIT_S``) is an
    `error` verdict: a suite's pattern or a model's output must never hang the gate.

    `truncated` says the generation hit max_new_tokens: an output cut off before a complete
    answer is then `truncated` rather than `no_answer`. `percent` says what "25 %" means:
    25 (``value``), 1/4 (``fraction``) or either (``either``, the default). Raises ValueError
    for an expected form that validate_expected rejects (the suite loader reports those at
    collection) and for a bad option.
    """
    problem = validate_expected(expected)
    if problem:
        raise ValueError(problem)
    if rel_tol is not None and not rel_tol >= 0:
        raise ValueError(f"rel_tol must be a number >= 0, got {rel_tol!r}")
    if percent not in PERCENT_RULES:
        raise ValueError(f"percent must be one of {', '.join(PERCENT_RULES)}, got {percent!r}")
    limit = ANSWER_CHECK_LIMIT_S if time_limit_s is None else time_limit_s
    try:
        with time_limit(limit):
            return _check(output, expected, how=Comparison(rel_tol, percent), unordered=unordered, truncated=truncated)
    except CheckTimedOut:
        return Verdict.error(f"checking the answer took longer than {limit:g} s; simplify the case's expected answer or regex")


def _check(output: str, expected: object, *, how: Comparison, unordered: bool, truncated: bool) -> Verdict:
    region, missing = _answer_region(output)
    if region is None:
        if truncated:
            return Verdict("truncated", None, "hit max_new_tokens inside <think> (no </think>)")
        return Verdict("no_answer", None, missing)
    reading = _Reading(region, after_think="</think>" in output, truncated=truncated)
    verdict = _judge(reading, expected, how=how, unordered=unordered)
    if verdict.correct:
        verdict = _unless_hedged(reading, verdict)
    if truncated and verdict.status == "no_answer":
        reason = f"hit max_new_tokens before a complete answer: {verdict.reason}"
        return Verdict("truncated", verdict.extracted, reason)
    return verdict


def _unless_hedged(reading: _Reading, verdict: Verdict) -> Verdict:
    """`verdict` made wrong when the output doubts or withdraws the answer it gives."""
    span = reading.answer_span() or (len(reading.folded), len(reading.folded))
    hedge = hedge_in(reading.folded, *span)
    if hedge is None:
        return verdict
    return Verdict("wrong", verdict.extracted, f"the output doubts or withdraws its answer: {_quote(hedge)}")


def _answer_region(output: str) -> tuple[str | None, str]:
    """The text the answer must come from, or None and why there is none."""
    if "</think>" in output:
        # A <think> reopened after the answer starts new reasoning: the answer precedes it.
        after = output.rsplit("</think>", 1)[1].split("<think>", 1)[0]
        return after[-MAX_OUTPUT_CHARS:], ""
    if "<think>" in output:
        return None, "<think> was opened but never closed"
    return output[-MAX_OUTPUT_CHARS:], ""


def _judge(reading: _Reading, expected: object, *, how: Comparison, unordered: bool) -> Verdict:
    if isinstance(expected, dict):
        if "regex" in expected:
            return _judge_regex(reading, expected["regex"])
        if "any_of" in expected:
            return _judge_any_of(reading, expected["any_of"], how=how, unordered=unordered)
        return _judge_named(reading, expected, how=how)
    if isinstance(expected, list):
        return _judge_list(reading, expected, how=how, unordered=unordered)
    text = text_answer(expected)
    if text is not None:
        return _judge_text(reading, text, format_expected(expected))
    both = both_roots(_expected_text(expected))  # type: ignore[arg-type]
    if both is not None:
        return _judge_list(reading, both, how=how, unordered=True)
    verdict = _judge_scalar(reading, expected, how=how)  # type: ignore[arg-type]
    elements = set_elements(_expected_text(expected))  # type: ignore[arg-type]
    if verdict.status != "correct" and elements is not None:
        as_set = _judge_list(reading, elements, how=how, unordered=True)
        if as_set.correct:
            return as_set
    return verdict


def _judge_text(reading: _Reading, expected: TextAnswer, want: str) -> Verdict:
    candidate = None if reading.cut_in_box else text_candidate(reading.folded, reading.boxes)
    if not candidate:
        return Verdict("no_answer", None, f"no \\boxed{{}}, 'the answer is' or final line found {reading.where}")
    correct, read = matches(expected, candidate)
    read = _shorten(read)
    if correct:
        return Verdict("correct", read, f"matches {want}")
    return Verdict("wrong", read, f"{_quote(read)} is not {want}")


def _judge_scalar(reading: _Reading, expected: int | float | str, *, how: Comparison) -> Verdict:
    letters = is_letter_expression(_expected_text(expected))
    answer = reading.final_answer(letters=letters)
    if answer is None:
        says = no_value_answer(reading.folded, reading.boxes)
        if says is not None:
            return Verdict("wrong", _shorten(says), f"{_quote(says)} gives no value (expected {format_expected(expected)})")
        return Verdict("no_answer", None, reading.nothing_found())
    expected_text = _expected_text(expected)
    is_equation = "=" in expected_text
    parts = answer_parts(answer)
    parts = [part for part in parts if holds_value(part, letters=letters)] or parts  # "and I'm certain of it"
    values = _one_value_repeated([_clean_value(part, keep_equation=is_equation) for part in parts])
    if not values:
        return Verdict("no_answer", None, f"no value in the final answer {_quote(answer)}")
    want = format_expected(expected)
    if len(values) == 1:
        got = values[0]
        by_unit = _unit_verdict(expected_text, got, parts, how, want)
        if by_unit is not None:
            return by_unit
        if _equal_text(expected_text, got, how):
            return Verdict("correct", shown(got), f"matches {want}")
        rules = function_rules(_expected_math(expected_text), got) if is_equation else None
        if rules is not None and _equal_text(*rules, how):
            return Verdict("correct", shown(got), f"matches {want} (the same function, named otherwise)")
        rounded = _clean_value(_math_text(answer), keep_equation=True)  # "25π，约等于 78.5" against 78.5
        if rounded and rounded != got and _equal_text(expected_text, rounded, how):
            return Verdict("correct", shown(rounded), f"matches {want}")
        return Verdict("wrong", shown(got), _mismatch(got, want))
    whole = _clean_value(_math_text(answer), keep_equation=True)
    joined = ", ".join(shown(value) for value in values)
    if whole and _equal_text(expected_text, whole, how):
        return Verdict("correct", joined, f"matches {want}")
    as_tuple = f"({', '.join(values)})"  # a system's rows against a point
    if is_group(_expected_math(expected_text)) and _equal_text(expected_text, as_tuple, how):
        return Verdict("correct", as_tuple, f"matches {want}")
    if all(opens_with_chinese(part) for part in parts[1:]) and _equal_text(expected_text, values[0], how):
        # "至少需要 17 辆，共可坐 510 人": the clauses after the answer tell more about it
        return Verdict("correct", shown(values[0]), f"matches {want}")
    return Verdict("wrong", joined, f"expected one value ({want}), got {len(values)}: {joined}")


def _one_value_repeated(values: list[str]) -> list[str]:
    """The values read, or the one value they repeat: "设人数为 x，则 x = 24，共 24 人" gives 24
    (a lone letter naming the unknown is no value of its own there)."""
    values = [value for value in values if value]
    distinct = list(dict.fromkeys(value for value in values if not _LONE_LETTER.fullmatch(value)))
    return distinct if len(distinct) == 1 and len(values) > 1 else values


_LONE_LETTER = re.compile(r"[A-Za-z]")


def _unit_verdict(expected_text: str, got: str, parts: list[str], how: Comparison, want: str) -> Verdict | None:
    """The verdict where both sides give a unit and the units differ, else None. Units only
    count when both sides give one: 500 m is 0.5 km, 5 m is not 5 km, 5 m² is no length."""
    want_unit = unit_at_end(_math_text(expected_text))
    got_unit = unit_at_end(parts[-1]) if want_unit is not None and parts else None
    if want_unit is None or got_unit is None or got_unit.name == want_unit.name or got.endswith("\\%"):
        return None
    factor = conversion(want_unit, got_unit)
    if factor is None:
        return Verdict("wrong", shown(got), f"{shown(got)} {got_unit.name} is not in {want_unit.name} (expected {want})")
    scaled = f"\\left({got}\\right) \\cdot \\frac{{{factor.numerator}}}{{{factor.denominator}}}"
    if _equal_text(expected_text, scaled, how):
        return Verdict("correct", shown(got), f"matches {want} ({got_unit.name} converted to {want_unit.name})")
    return Verdict("wrong", shown(got), f"{shown(got)} {got_unit.name} ≠ {want}")


def _judge_list(
    reading: _Reading, expected: Sequence[int | float | str], *, how: Comparison, unordered: bool
) -> Verdict:
    wanted = [_expected_text(item) for item in expected]
    groups = all(is_group(_expected_math(text)) for text in wanted)
    values = reading.final_parts(len(expected), groups=groups)
    if not values:
        return Verdict("no_answer", None, reading.nothing_found())
    unordered = unordered or reading.gives_both_roots()
    joined = ", ".join(shown(value) for value in values)
    display = [_display_scalar(item) for item in expected]
    if len(values) != len(expected):
        cut_short = len(values) < len(expected) and reading.may_continue
        count = f"expected {len(expected)} parts ({', '.join(display)}), got {len(values)}: {joined}"
        return Verdict("no_answer" if cut_short else "wrong", joined, count)
    if unordered:
        unused = list(values)
        for text, part in zip(wanted, display):
            match = next((got for got in unused if _equal_text(text, got, how)), None)
            if match is None:
                return Verdict("wrong", joined, f"{part} missing (got {joined}, any order)")
            unused.remove(match)
        return Verdict("correct", joined, f"matches {', '.join(display)} (any order)")
    for index, (text, part, got) in enumerate(zip(wanted, display, values), start=1):
        if not _equal_text(text, got, how):
            return Verdict("wrong", joined, f"part {index}: {_mismatch(got, part)}")
    return Verdict("correct", joined, f"matches {', '.join(display)}")


def _judge_named(reading: _Reading, expected: Mapping[str, int | float | str], *, how: Comparison) -> Verdict:
    found = reading.named_values(list(expected))
    listed = ", ".join(f"{name} = {shown(found[name])}" for name in expected if name in found)
    extracted = listed or None
    if not found:
        answer = reading.final_answer()
        names = " or ".join(f"'{name} = …'" for name in expected)
        where = f"in the final answer {_quote(answer)} or elsewhere" if answer else reading.where
        return Verdict("no_answer", _shorten(answer) if answer else None, f"no {names} found {where}")
    missing = [name for name in expected if name not in found]
    if missing:
        status: VerdictStatus = "no_answer" if reading.may_continue else "wrong"
        return Verdict(status, extracted, f"{', '.join(missing)}: not found (got {listed})")
    for name, value in expected.items():
        if not _equal_text(_expected_text(value), found[name], how):
            return Verdict("wrong", extracted, f"{name}: {_mismatch(found[name], _display_scalar(value))}")
    return Verdict("correct", extracted, f"matches {format_expected(dict(expected))}")


def _judge_any_of(reading: _Reading, alternatives: Sequence[object], *, how: Comparison, unordered: bool) -> Verdict:
    verdicts = [_judge(reading, item, how=how, unordered=unordered) for item in alternatives]
    for index, verdict in enumerate(verdicts, start=1):
        if verdict.correct:
            reason = f"alternative {index} of {len(verdicts)}: {verdict.reason}"
            return Verdict("correct", verdict.extracted, reason)
    wrong = next((verdict for verdict in verdicts if verdict.status == "wrong"), None)
    if wrong is None:
        return verdicts[0]
    choices = " | ".join(format_expected(item) for item in alternatives)
    return Verdict("wrong", wrong.extracted, f"{wrong.extracted} matches none of: {choices}")


def _judge_regex(reading: _Reading, pattern: str) -> Verdict:
    answer = reading.answer_text()
    target = answer if answer is not None else reading.folded.strip()
    if not target:
        return Verdict("no_answer", None, reading.nothing_found())
    shown = _shorten(target)
    where = "final answer" if answer is not None else f"text {reading.where}"
    if search(pattern, target):
        return Verdict("correct", shown, f"{where} matches /{pattern}/")
    return Verdict("wrong", shown, f"{where} {_quote(target)} does not match /{pattern}/")


def _mismatch(got: str, want: str) -> str:
    if _plain_number(got) is None and _parse_value(got) is None:
        return f"{shown(got)} is not a value that can be read or evaluated (expected {want})"
    return f"{shown(got)} ≠ {want}"


def _shorten(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters, for messages and JUnit properties."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _quote(text: str | None, limit: int = 80) -> str:
    return f"'{_shorten(text or '', limit)}'"

