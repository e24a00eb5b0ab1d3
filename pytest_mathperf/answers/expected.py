"""Reading the expected answer a suite author writes: which forms are accepted, and how they display."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import regex

from pytest_mathperf.answers.deadline import compiled
from pytest_mathperf.answers.equality import _expected_math, _parse_value, _plain_number
from pytest_mathperf.answers.text import text_answer
from pytest_mathperf.answers.values import both_roots

if TYPE_CHECKING:
    from collections.abc import Mapping


def validate_expected(expected: object) -> str | None:
    """None when `expected` is a form check_answer accepts, else one line saying what is wrong."""
    return _validate(expected, "answer")


def _validate(expected: object, where: str) -> str | None:
    if isinstance(expected, dict):
        if "regex" in expected:
            if len(expected) != 1:
                return f"{where}: {{regex: ...}} takes no other keys (got {_keys(expected)})"
            pattern = expected["regex"]
            if not isinstance(pattern, str) or not pattern:
                return f"{where}: {{regex: ...}} must be a non-empty string"
            try:
                compiled(pattern)
            except regex.error as exc:
                return f"{where}: {{regex: {pattern!r}}} is not a valid regular expression: {exc}"
            return None
        if "any_of" in expected:
            if len(expected) != 1:
                return f"{where}: {{any_of: [...]}} takes no other keys (got {_keys(expected)})"
            alternatives = expected["any_of"]
            if not isinstance(alternatives, list) or not alternatives:
                return f"{where}: {{any_of: [...]}} must be a non-empty list of answers"
            for index, alternative in enumerate(alternatives):
                problem = _validate(alternative, f"{where}: any_of[{index}]")
                if problem:
                    return problem
            return None
        if not expected:
            return f"{where}: mapping of named parts is empty"
        for name, value in expected.items():
            if not isinstance(name, str) or not name.strip():
                return f"{where}: mapping keys must be part names (strings), got {name!r}"
            if not _is_scalar(value):
                return f"{where}: mapping parts must be scalars (part {name!r} is {_kind(value)})"
            problem = _validate_scalar(value, f"{where}: {name}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not expected:
            return f"{where}: list of parts is empty"
        for index, value in enumerate(expected):
            if not _is_scalar(value):
                return f"{where}: list parts must be scalars (part {index + 1} is {_kind(value)})"
            problem = _validate_scalar(value, f"{where}: part {index + 1}")
            if problem:
                return problem
        return None
    if _is_scalar(expected):
        return _validate_scalar(expected, where)
    forms = "a number, a string, a list, a mapping, {any_of: ...} or {regex: ...}"
    return f"{where}: expected {forms}, got {_kind(expected)}"


def _validate_scalar(value: int | float | str, where: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value!r} is not a finite number"
    text = _expected_text(value)
    if not text:
        return f"{where}: is empty"
    if text_answer(text) is not None or _plain_number(_expected_math(text)) is not None:
        return None
    roots = both_roots(text)
    if roots is not None and all(_parse_value(_expected_math(root)) is not None for root in roots):
        return None
    if _parse_value(_expected_math(text)) is None:
        return f"{where}: {text!r} is not a number or LaTeX expression that can be read"
    return None


def _is_scalar(value: object) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {value!r}"
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _keys(mapping: Mapping[Any, Any]) -> str:
    return ", ".join(str(key) for key in mapping)


def format_expected(expected: object) -> str:
    """The expected answer as one line for messages and JUnit properties."""
    if isinstance(expected, dict):
        if "regex" in expected:
            return f"regex: {expected['regex']}"
        if "any_of" in expected:
            return "any of: " + " | ".join(format_expected(item) for item in expected["any_of"])
        return ", ".join(f"{name} = {_display_scalar(value)}" for name, value in expected.items())
    if isinstance(expected, list):
        return ", ".join(_display_scalar(value) for value in expected)
    return _display_scalar(expected)


def _display_scalar(value: object) -> str:
    if isinstance(value, float):
        return _float_text(value)
    return str(value)


def _float_text(value: float) -> str:
    """A float as a plain decimal: YAML's 1e-05 must not read as e - 5."""
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(value, ".17f").rstrip("0").rstrip(".")
    return text


def _expected_text(value: int | float | str) -> str:
    if isinstance(value, float):
        return _float_text(value)
    return str(value).strip()

