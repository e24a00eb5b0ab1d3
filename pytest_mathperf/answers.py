"""Answer extraction and equivalence: one `Verdict` per generation.

math-verify (and latex2sympy/sympy under it) decides whether two single values are equal.
This module does what it does not: Chinese text, full-width characters, units, several parts,
named parts, tolerance, and hard bounds on the work, so that a pathological output can't
hang a run and a call from any thread works (math-verify's SIGALRM timeouts are turned off).

Where the answer is read from
    The text after the last ``</think>``; a ``<think>`` that never closes has no answer
    (``truncated`` when the generation hit max_new_tokens, ``no_answer`` otherwise). Only the
    last 4,000 characters are read. In that text, in order of preference:

    1. ``\\boxed{…}`` / ``\\fbox{…}`` (nested braces). A single answer takes the last box. Several
       parts take the last box when it holds enough parts (``\\boxed{17, 19}``,
       ``\\boxed{17 和 19}``, ``\\boxed{x = 20/7, y = 25/7}``), otherwise the last parts over all
       boxes (``\\boxed{17}`` … ``\\boxed{19}``).
    2. The last "final answer:", "the answer is", "answers are", "最终答案", "答案是/为/：",
       "答：" that is followed by a value, up to the end of its sentence.
    3. The last line that holds a value (closing words such as "Hope this helps!" are
       skipped), read from its last "so", "thus", "therefore", "hence", "we get", "所以",
       "因此", "故", "综上", "解得", "可得", "得到" on, up to the end of that sentence.

    Nothing found is ``no_answer``.

Reading a value
    Full-width digits and punctuation (``，。：＝－／（）``) and U+2212 minus are folded to
    ASCII; ``π``, ``√``, ``×``, ``²`` to LaTeX; ``$``, ``\\(``, ``**``, ``\\text{}`` wrappers are
    dropped. An equation's left side is not an answer: ``x = 60/21 = 20/7`` reads ``20/7``, and
    ``20/7 ≈ 2.857`` reads ``20/7``. Chinese words, leading English words ("the numbers are")
    and trailing units (cm, cm², km/h, °, %, 平方厘米, 元, 本, 个, 米, any trailing English
    word such as "books") are dropped, so ``50%`` reads as 50: percent is a unit, not 0.5.
    A comma followed by exactly three digits and no space is a thousands separator
    (``1,234``); the Chinese comma ``，`` never is. Any other comma, ``;``, ``、``, "and",
    "or", "和", "与", "或", ``\\quad`` and the row break ``\\\\`` of ``cases``/``aligned``
    separate parts (``17, 19``). Commas inside brackets do not separate (``(1, 2]``).

Expected forms (as written in suite YAML)
    scalar        one value; ``\\boxed{17, 19}`` is not ``17``. A scalar holding ``=`` is compared
                  as an equation.
    list          every part, in order (or in any order with ``unordered=True``); the count
                  must match. A lone tuple or set gives its elements as the parts
                  (``(x, y) = (20/7, 25/7)``, ``\\{17, 19\\}``).
    mapping       named parts, matched by name in any order: ``name = v``, ``name: v``,
                  ``name ≈ v``, ``name is v``, ``(x, y) = (a, b)`` (a Latin-script name must be
                  followed directly by one of these); a name in Chinese also as ``name 是/为 v``
                  or ``name v`` with up to four Chinese characters between (``科技书2本``,
                  ``面积为 25π cm²``, ``科技书买了2本``). Names are looked up in the final answer
                  first, then anywhere after ``</think>``; the last occurrence wins. A name is
                  not found inside an equation (``3x - y = 5`` gives no ``y``). Names are never
                  translated or guessed: key the YAML in the language the model answers in
                  (``{面积: "25\\pi", 周长: "10\\pi"}``).
    {any_of: […]} any one alternative, each any of these forms.
    {regex: "…"}  ``re.search`` on the final answer text (box or answer phrase, full-width
                  folded); if neither exists, on the whole text after ``</think>``.

Equality
    Numbers without free symbols are compared numerically at 60 digits. With ``rel_tol`` they
    are equal when ``|a - b| <= rel_tol * max(|a|, |b|)`` (relative only: nothing but 0 is
    within tolerance of 0). Without it, exact forms must be exactly equal (``20/7`` =
    ``\\frac{20}{7}``, ``25π`` = ``25\\pi``, ``1000001`` ≠ ``1000000``), and when either side is
    a decimal the relative tolerance is 1e-6: ``2.857143`` equals ``20/7``, ``2.857`` does
    not (it needs ``rel_tol: 1e-3``). Everything else (expressions in variables, sets, intervals,
    equations) goes to math-verify's ``verify``, which rounds decimals inside them to six
    places and ignores ``rel_tol``. Any exception there is "not equal".

Not handled, on purpose
    Synonyms or translations of part names (``area`` does not find 面积); values given only
    positionally for a mapping (``\\boxed{20/7, 25/7}`` for ``{x, y}``); "分别是 2 本和 3 本"
    against named parts (a list answer ``[2, 3]`` does read it); numbers written in words
    (seventeen, 十七); ``±`` (``x = \\pm 3`` is one part, not 3 and -3); tuples whose second
    element is three digits right after a comma (``(1,234)`` reads 1234); function names
    written without a backslash (``sin x`` reads ``x``: write ``\\sin x``). Values that would
    take sympy minutes read as unreadable (a wrong answer, never a hang): powers with an
    exponent over 10,000 (over 100 for a power of a symbol), factorials over 1,000, sums,
    products, integrals and limits left unevaluated, and ``\\binom``/``\\gcd`` holding powers
    or numbers over 1,000.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from sympy import Basic

VerdictStatus = Literal["correct", "wrong", "no_answer", "truncated", "error"]

#: Only the end of an output is read: the answer is there, and the work stays bounded.
MAX_OUTPUT_CHARS = 4000
#: Longer candidate values are not parsed: no real answer is this long.
MAX_VALUE_CHARS = 300
#: A part longer than this is prose, not a value, and is skipped.
MAX_PART_CHARS = 1000
#: Larger exponents, factorials or function arguments make sympy work for minutes; a value
#: holding one is unreadable. Powers of a symbol are bounded lower: they get expanded.
MAX_EXPONENT = 10_000
MAX_SYMBOLIC_EXPONENT = 100
MAX_FACTORIAL = 1000
MAX_FUNCTION_ARGUMENT = 10**6
#: Symbolic comparison (simplify) is only attempted on expressions this small.
MAX_SYMBOLIC_NODES = 80
#: Relative tolerance when either side is a decimal and no rel_tol is given.
DEFAULT_DECIMAL_REL_TOL = 1e-6
#: Numeric "exact" equality: 60-digit evaluation, far below any written difference.
_EXACT_REL_TOL = 1e-40
_EVAL_DIGITS = 60


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


# ---------------------------------------------------------------------------------------
# Expected answers: validation and display


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
                re.compile(pattern)
            except re.error as exc:
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


# ---------------------------------------------------------------------------------------
# The public check


def check_answer(
    output: str,
    expected: object,
    *,
    rel_tol: float | None = None,
    unordered: bool = False,
    truncated: bool = False,
) -> Verdict:
    """Judge one generation's `output` against the suite's `expected` answer.

    `truncated` says the generation hit max_new_tokens: an output cut off before a complete
    answer is then `truncated` rather than `no_answer`. Raises ValueError for an expected
    form that validate_expected rejects (the suite loader reports those at collection).
    """
    problem = validate_expected(expected)
    if problem:
        raise ValueError(problem)
    if rel_tol is not None and not rel_tol >= 0:
        raise ValueError(f"rel_tol must be a number >= 0, got {rel_tol!r}")
    region, missing = _answer_region(output)
    if region is None:
        if truncated:
            return Verdict("truncated", None, "hit max_new_tokens inside <think> (no </think>)")
        return Verdict("no_answer", None, missing)
    reading = _Reading(region, after_think="</think>" in output, truncated=truncated)
    verdict = _judge(reading, expected, rel_tol=rel_tol, unordered=unordered)
    if truncated and verdict.status == "no_answer":
        reason = f"hit max_new_tokens before a complete answer: {verdict.reason}"
        return Verdict("truncated", verdict.extracted, reason)
    return verdict


def _answer_region(output: str) -> tuple[str | None, str]:
    """The text the answer must come from, or None and why there is none."""
    if "</think>" in output:
        return output.rsplit("</think>", 1)[1][-MAX_OUTPUT_CHARS:], ""
    if "<think>" in output:
        return None, "<think> was opened but never closed"
    return output[-MAX_OUTPUT_CHARS:], ""


def _judge(reading: _Reading, expected: object, *, rel_tol: float | None, unordered: bool) -> Verdict:
    if isinstance(expected, dict):
        if "regex" in expected:
            return _judge_regex(reading, expected["regex"])
        if "any_of" in expected:
            return _judge_any_of(reading, expected["any_of"], rel_tol=rel_tol, unordered=unordered)
        return _judge_named(reading, expected, rel_tol=rel_tol)
    if isinstance(expected, list):
        return _judge_list(reading, expected, rel_tol=rel_tol, unordered=unordered)
    return _judge_scalar(reading, expected, rel_tol=rel_tol)  # type: ignore[arg-type]


def _judge_scalar(reading: _Reading, expected: int | float | str, *, rel_tol: float | None) -> Verdict:
    answer = reading.final_answer()
    if answer is None:
        return Verdict("no_answer", None, reading.nothing_found())
    expected_text = _expected_text(expected)
    is_equation = "=" in expected_text
    parts = _split_parts(_math_text(answer))
    values = [value for value in (_clean_value(part, keep_equation=is_equation) for part in parts) if value]
    if not values:
        return Verdict("no_answer", None, f"no value in the final answer {_quote(answer)}")
    want = format_expected(expected)
    if len(values) == 1:
        got = values[0]
        if _equal_text(expected_text, got, rel_tol):
            return Verdict("correct", got, f"matches {want}")
        return Verdict("wrong", got, _mismatch(got, want))
    whole = _clean_value(_math_text(answer), keep_equation=True)
    joined = ", ".join(values)
    if whole and _equal_text(expected_text, whole, rel_tol):
        return Verdict("correct", joined, f"matches {want}")
    return Verdict("wrong", joined, f"expected one value ({want}), got {len(values)}: {joined}")


def _judge_list(
    reading: _Reading, expected: Sequence[int | float | str], *, rel_tol: float | None, unordered: bool
) -> Verdict:
    values = reading.final_parts(len(expected))
    if not values:
        return Verdict("no_answer", None, reading.nothing_found())
    joined = ", ".join(values)
    wanted = [_expected_text(item) for item in expected]
    shown = [_display_scalar(item) for item in expected]
    if len(values) != len(expected):
        cut_short = len(values) < len(expected) and reading.may_continue
        count = f"expected {len(expected)} parts ({', '.join(shown)}), got {len(values)}: {joined}"
        return Verdict("no_answer" if cut_short else "wrong", joined, count)
    if unordered:
        unused = list(values)
        for text, display in zip(wanted, shown):
            match = next((got for got in unused if _equal_text(text, got, rel_tol)), None)
            if match is None:
                return Verdict("wrong", joined, f"{display} missing (got {joined}, any order)")
            unused.remove(match)
        return Verdict("correct", joined, f"matches {', '.join(shown)} (any order)")
    for index, (text, display, got) in enumerate(zip(wanted, shown, values), start=1):
        if not _equal_text(text, got, rel_tol):
            return Verdict("wrong", joined, f"part {index}: {_mismatch(got, display)}")
    return Verdict("correct", joined, f"matches {', '.join(shown)}")


def _judge_named(
    reading: _Reading, expected: Mapping[str, int | float | str], *, rel_tol: float | None
) -> Verdict:
    found = reading.named_values(list(expected))
    shown = ", ".join(f"{name} = {found[name]}" for name in expected if name in found)
    extracted = shown or None
    if not found:
        answer = reading.final_answer()
        names = " or ".join(f"'{name} = …'" for name in expected)
        where = f"in the final answer {_quote(answer)} or elsewhere" if answer else reading.where
        return Verdict("no_answer", _shorten(answer) if answer else None, f"no {names} found {where}")
    missing = [name for name in expected if name not in found]
    if missing:
        status: VerdictStatus = "no_answer" if reading.may_continue else "wrong"
        return Verdict(status, extracted, f"{', '.join(missing)}: not found (got {shown})")
    for name, value in expected.items():
        if not _equal_text(_expected_text(value), found[name], rel_tol):
            return Verdict("wrong", extracted, f"{name}: {_mismatch(found[name], _display_scalar(value))}")
    return Verdict("correct", extracted, f"matches {format_expected(dict(expected))}")


def _judge_any_of(
    reading: _Reading, alternatives: Sequence[object], *, rel_tol: float | None, unordered: bool
) -> Verdict:
    verdicts = [_judge(reading, item, rel_tol=rel_tol, unordered=unordered) for item in alternatives]
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
    answer = reading.final_answer(require_anchor=True)
    target = answer if answer is not None else reading.folded.strip()
    if not target:
        return Verdict("no_answer", None, reading.nothing_found())
    shown = _shorten(target)
    where = "final answer" if answer is not None else f"text {reading.where}"
    if _compiled(pattern).search(target):
        return Verdict("correct", shown, f"{where} matches /{pattern}/")
    return Verdict("wrong", shown, f"{where} {_quote(target)} does not match /{pattern}/")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _mismatch(got: str, want: str) -> str:
    if _parse_value(got) is None:
        return f"{got} is not a value that can be read or evaluated (expected {want})"
    return f"{got} ≠ {want}"


def _shorten(text: str, limit: int = 200) -> str:
    """`text` on one line, cut to `limit` characters, for messages and JUnit properties."""
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _quote(text: str | None, limit: int = 80) -> str:
    return f"'{_shorten(text or '', limit)}'"


# ---------------------------------------------------------------------------------------
# Finding the final answer


# Full-width forms (U+FF01..U+FF5E) map onto ASCII; the Chinese comma keeps a space after it so
# that "17，190" stays two parts and never reads as a thousands separator.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FOLD.update({ord("，"): ", ", ord("；"): "; ", ord("\u3000"): " ", ord("\u2212"): "-", ord("\u2013"): "-"})

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_STRONG_ANCHOR = re.compile(
    r"\b(?:final\s+answers?|answers?)\s*(?:is|are|:)|\bfinal\s+answer\b"
    r"|最终答案\s*(?:是|为|:)?|答案\s*(?:是|为|:)|答\s*:",
    re.IGNORECASE,
)
_WEAK_ANCHOR = re.compile(
    r"\b(?:so|thus|therefore|hence|we\s+get|we\s+find|we\s+obtain)\b"
    r"|所以|因此|故|综上所述|综上|解得|求得|可得|得到",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"。|\n|\.(?!\d)|[!?]")
_PROSE = re.compile(
    r"\b(?:because|since|which|where|when|as|if)\b|因为|由于|其中|验证", re.IGNORECASE
)
_HAS_MATH = re.compile(r"\d|\\[A-Za-z]|π|√")


class _Reading:
    """One output's answer region, with the answer text found once and reused by every form."""

    def __init__(self, region: str, *, after_think: bool, truncated: bool) -> None:
        self.folded = region.translate(_FOLD)
        self.after_think = after_think
        self.boxes = _boxes(self.folded)
        # A cut-off generation may have been about to give the parts still missing.
        self.may_continue = truncated

    @property
    def where(self) -> str:
        return "after </think>" if self.after_think else "in the output"

    def nothing_found(self) -> str:
        return f"no \\boxed{{}}, 'the answer is' or final line with a value found {self.where}"

    def final_answer(self, *, require_anchor: bool = False) -> str | None:
        """The text of the final answer: last box, else last answer phrase, else last line."""
        if self.boxes:
            return self.boxes[-1]
        strong = self._anchored(_STRONG_ANCHOR)
        if strong is not None or require_anchor:
            return strong
        return self._last_line()

    def final_parts(self, count: int) -> list[str]:
        """The values of a several-part answer: the last box if it holds enough, else the last
        `count` parts over all boxes, else the parts of the answer phrase or last line."""
        if self.boxes:
            last = _values(self.boxes[-1])
            if len(last) >= count:
                return last
            every = [value for box in self.boxes for value in _values(box)]
            return every[-count:]
        answer = self.final_answer()
        return _values(answer) if answer else []

    def named_values(self, names: list[str]) -> dict[str, str]:
        """Each name's value: from the final answer, then from anywhere in the region."""
        found: dict[str, str] = {}
        answer_texts = [", ".join(self.boxes)] if self.boxes else []
        answer = self.final_answer()
        if answer is not None and not self.boxes:
            answer_texts.append(answer)
        for text in [*answer_texts, _unbox(self.folded)]:
            for name, value in _named_in(_math_text(text), names).items():
                found.setdefault(name, value)
        return found

    def _anchored(self, anchor: re.Pattern[str]) -> str | None:
        """The sentence after the last occurrence of `anchor` that holds a value."""
        for match in reversed(list(anchor.finditer(self.folded))):
            text = _sentence_after(self.folded, match.end())
            if _HAS_MATH.search(text):
                return text
        return None

    def _last_line(self) -> str | None:
        """The last line holding a value (a closing "Hope this helps!" is skipped), read from
        its last "so"/"所以" on, up to the end of that sentence."""
        for line in reversed(self.folded.splitlines()):
            anchors = list(_WEAK_ANCHOR.finditer(line))
            if anchors:
                line = line[anchors[-1].end() :]
            text = _cut_prose(_SENTENCE_END.split(line.strip(" \t:,*"), maxsplit=1)[0]).strip()
            if _HAS_MATH.search(text):
                return text
        return None


def _sentence_after(text: str, start: int) -> str:
    rest = text[start:].lstrip(" \t:*")
    if rest.startswith("\n"):  # a heading such as "**Final Answer**" then the value below
        rest = rest.lstrip(" \t\n*:")
    return _cut_prose(_SENTENCE_END.split(rest, maxsplit=1)[0]).strip()


def _cut_prose(text: str) -> str:
    return _PROSE.split(text, maxsplit=1)[0]


def _boxes(text: str) -> list[str]:
    """Contents of every complete \\boxed{…} / \\fbox{…}, in order; empty ones are skipped."""
    contents = []
    for match in _BOX.finditer(text):
        end = _closing_brace(text, match.end())
        if end is not None and text[match.end() : end].strip():
            contents.append(text[match.end() : end].strip())
    return contents


def _closing_brace(text: str, start: int) -> int | None:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "{" and text[index - 1] != "\\":
            depth += 1
        elif text[index] == "}" and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return index
    return None


def _unbox(text: str) -> str:
    """`text` with each \\boxed{v} replaced by v, so "x = \\boxed{3}" reads as "x = 3"."""
    while (match := _BOX.search(text)) is not None:
        end = _closing_brace(text, match.end())
        if end is None:
            return text[: match.start()] + text[match.end() :]
        text = text[: match.start()] + text[match.end() : end] + text[end + 1 :]
    return text


# ---------------------------------------------------------------------------------------
# Turning answer text into values


_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]*\}")
_MATH_REPLACEMENTS = [
    ("\\\\", ", "),  # a LaTeX line break, as between the rows of \begin{cases}
    ("&", " "),
    ("π", "\\pi "),
    ("√", "\\sqrt"),
    ("×", "\\times "),
    ("÷", "\\div "),
    ("·", "\\cdot "),
    ("∞", "\\infty "),
    ("≈", "\\approx "),
    ("≤", "\\le "),
    ("≥", "\\ge "),
    ("²", "^2"),
    ("³", "^3"),
    ("{,}", ""),
    ("\\qquad", ", "),
    ("\\quad", ", "),
    ("\\displaystyle", " "),
    ("\\left", ""),
    ("\\right", ""),
    ("\\(", " "),
    ("\\)", " "),
    ("\\[", " "),
    ("\\]", " "),
    ("\\,", " "),
    ("\\ ", " "),
    ("\\;", " "),
    ("\\!", ""),
    ("$", " "),
    ("**", " "),
    ("~", " "),
]
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_LEADING_WORDS = re.compile(r"^\s*(?:(?<!\\)\b(?!pi\b)[A-Za-z]{2,}\b\s*:?\s+)+")
_UNIT = r"(?:cm|mm|km|dm|kg|mg|ml|km/h|m/s|cm/s|kph|mph)(?:\s*\^\s*\{?[23]\}?)?"
_TRAILING_JUNK = re.compile(
    r"(?:\s*(?:(?<![A-Za-z\\])" + _UNIT + r"|(?<=\s)[mgslh](?:\s*\^\s*\{?[23]\}?)?"
    r"|(?<=\s)(?<!\\)(?!pi\b)[A-Za-z]{2,}(?:\s*\^\s*\{?[23]\}?)?"
    r"|°|%|\\%|\^\s*\{?\\circ\}?|\\circ|\\degree|[.,;:]))+\s*$"
)
_EQUALS = re.compile(r"(?<![<>!\\])=(?!=)")
_APPROX = re.compile(r"\\approx|\\sim(?![a-z])")


def _math_text(text: str) -> str:
    """Answer text with math symbols in LaTeX and decoration dropped; parts and names intact."""
    text = _TEXT_WRAPPER.sub(lambda match: f" {match.group(1)} ", text)
    text = _ENVIRONMENT.sub(" ", text)
    for old, new in _MATH_REPLACEMENTS:
        text = text.replace(old, new)
    return _THOUSANDS.sub("", text)


_PART_WORDS = ("and", "or")
_PART_SEPARATORS = (",", ";", "、", "\n", "和", "与", "或", "及")


def _split_parts(text: str) -> list[str]:
    """Split at separators outside brackets: "17, 19" and "(1, 2], 3" give two parts each."""
    parts: list[str] = []
    depth = 0
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0:
            width = _separator_width(text, index)
            if width:
                parts.append(text[start:index])
                index += width
                start = index
                continue
        index += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _separator_width(text: str, index: int) -> int:
    if text[index] in _PART_SEPARATORS:
        return 1
    for word in _PART_WORDS:
        end = index + len(word)
        if (
            text[index:end].lower() == word
            and (index == 0 or not text[index - 1].isalnum())
            and (end == len(text) or not text[end].isalnum())
        ):
            return len(word)
    return 0


def _values(answer: str) -> list[str]:
    """The readable values of a several-part answer, in order; parts with no value dropped.

    A lone bracketed group holds the parts: "(x, y) = (20/7, 25/7)" gives 20/7 and 25/7.
    """
    values = [value for value in (_clean_value(part) for part in _split_parts(_math_text(answer))) if value]
    group = _lone_group(values[0]) if len(values) == 1 else None
    if group is not None:
        inner = [value for value in (_clean_value(part) for part in _split_parts(group)) if value]
        if len(inner) > 1:
            return inner
    return values


def _lone_group(value: str) -> str | None:
    """The inside of a value that is one bracketed group: (a, b), [a, b] or \\{a, b\\}."""
    if value.startswith("\\{") and value.endswith("\\}"):
        return value[2:-2]
    if value[:1] in "([" and _closing_paren(value, 1) == len(value) - 1:
        return value[1:-1]
    return None


def _clean_value(text: str, *, keep_equation: bool = False) -> str:
    """One part's value as math text: the right side of the last `=`, without words or units."""
    text = " ".join(text.split())
    if len(text) > MAX_PART_CHARS:
        return ""  # prose, not a value; and the regexes below must stay linear
    approx = _APPROX.split(text, maxsplit=1)
    if len(approx) == 2 and _HAS_MATH.search(_CJK.sub(" ", approx[0].split("=")[-1])):
        text = approx[0]
    elif len(approx) == 2:
        text = approx[1]
    if not keep_equation:
        text = _top_level_split(text, _EQUALS)[-1]
    text = _CJK.sub(" ", text)
    text = _LEADING_WORDS.sub("", text)
    text = _TRAILING_JUNK.sub("", text)
    return " ".join(text.strip(" :=,;").split())


def _top_level_split(text: str, separator: re.Pattern[str]) -> list[str]:
    """Split at `separator` only where it is outside braces (keeps \\frac{a=b}{c} whole)."""
    pieces = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and separator.match(text, index):
            pieces.append(text[start:index])
            start = index + 1
    pieces.append(text[start:])
    return pieces


# A name, then how it is tied to its value. ASCII names need "=", ":" or "is"; Chinese names
# may run straight into the value ("科技书2本") or have a few words between ("面积为").
_NAME_CONNECTOR_ASCII = r"\s*(?:=|:|\\approx|\bis\b|\bequals\b)\s*"
_NAME_CONNECTOR_CJK = r"\s*(?:[A-Za-z]\s*=\s*|[\u3400-\u9fff]{0,4}?\s*(?:=|:|\\approx|是|为|等于)?\s*)"
_VALUE_START = r"(?=[-+]?(?:\d|\.\d|\\[A-Za-z]|\(|\{|π))"
_VALUE_END = re.compile(r",|;|、|\n|。|\.(?!\d)|\band\b|和|且|以及|\\\\")
_BEFORE_NAME_OPERATORS = "+-*/^=<>"


def _named_in(text: str, names: list[str]) -> dict[str, str]:
    """The last value given to each of `names` in `text`, as `name = value` and alike."""
    occurrences: list[tuple[int, int, str]] = []  # (name start, value start, name)
    for name in names:
        occurrences.extend((start, value_start, name) for start, value_start in _name_matches(text, name))
    occurrences.sort()
    found: dict[str, str] = {}
    for index, (_, value_start, name) in enumerate(occurrences):
        end_match = _VALUE_END.search(text, value_start)
        end = end_match.start() if end_match else len(text)
        if index + 1 < len(occurrences):
            end = min(end, occurrences[index + 1][0])
        value = _clean_value(text[value_start:end])
        if value:
            found[name] = value
    for name, value in _tuple_values(text, names).items():
        found[name] = value
    return found


def _name_matches(text: str, name: str) -> list[tuple[int, int]]:
    if name.isascii():
        alone = rf"(?<![A-Za-z0-9_\\]){re.escape(name)}(?![A-Za-z0-9_])"
        pattern = f"{alone}{_NAME_CONNECTOR_ASCII}{_VALUE_START}"
    else:
        pattern = rf"{re.escape(name)}{_NAME_CONNECTOR_CJK}{_VALUE_START}"
    return [
        (match.start(), match.end())
        for match in re.finditer(pattern, text, flags=re.IGNORECASE)
        if not _inside_expression(text, match.start())
    ]


def _inside_expression(text: str, start: int) -> bool:
    """True for "y" in "3x - y = 5": an operator before the name makes it an equation's side.

    A "-" or "*" that opens its line is a list bullet, not an operator.
    """
    before = text[:start].rstrip(" \t")
    if not before or before[-1] not in _BEFORE_NAME_OPERATORS:
        return False
    line_start = before.rfind("\n") + 1
    return not (before[-1] in "-*" and not before[line_start:-1].strip())


_TUPLE = re.compile(r"\(\s*([^()=]+?)\s*\)\s*=\s*\(")


def _tuple_values(text: str, names: list[str]) -> dict[str, str]:
    """Values of "(x, y) = (20/7, 25/7)" when every name in the left tuple is a part name."""
    found: dict[str, str] = {}
    for match in _TUPLE.finditer(text):
        left = [item.strip() for item in match.group(1).split(",")]
        if len(left) < 2 or not all(item in names for item in left):
            continue
        end = _closing_paren(text, match.end())
        if end is None:
            continue
        right = _split_parts(text[match.end() : end])
        if len(right) == len(left):
            found.update(zip(left, (_clean_value(value) for value in right)))
    return found


def _closing_paren(text: str, start: int) -> int | None:
    depth = 1
    for index in range(start, len(text)):
        if text[index] in "([{":
            depth += 1
        elif text[index] in ")]}":
            depth -= 1
            if depth == 0:
                return index
    return None


# ---------------------------------------------------------------------------------------
# Equality, through math-verify, bounded


def _equal_text(expected: str, got: str, rel_tol: float | None) -> bool:
    """Whether the answer text `got` equals the expected text; unreadable is never equal."""
    want = _parse_value(_expected_math(expected))
    have = _parse_value(got)
    if want is None or have is None:
        return False
    try:
        return _equal(want, have, rel_tol)
    except Exception:  # sympy can raise almost anything on odd input; that is "not equal"
        return False


def _equal(expected: Basic, got: Basic, rel_tol: float | None) -> bool:
    import sympy

    if expected == got:
        return True
    if _is_number(expected) and _is_number(got):
        if rel_tol is not None:
            tolerance = rel_tol
        elif expected.has(sympy.Float) or got.has(sympy.Float):
            tolerance = DEFAULT_DECIMAL_REL_TOL
        else:
            tolerance = _EXACT_REL_TOL
        difference = abs(sympy.N(expected - got, _EVAL_DIGITS))
        scale = max(abs(sympy.N(expected, _EVAL_DIGITS)), abs(sympy.N(got, _EVAL_DIGITS)))
        if not (difference.is_finite and scale.is_finite):
            return False
        return bool(difference <= tolerance * scale)
    if _node_count(expected) > MAX_SYMBOLIC_NODES or _node_count(got) > MAX_SYMBOLIC_NODES:
        return False
    verify = _math_verify()[1]
    return bool(verify(expected, got, timeout_seconds=None, raise_on_error=False))


def _is_number(expr: Basic) -> bool:
    import sympy

    return isinstance(expr, sympy.Expr) and bool(expr.is_number)


def _node_count(expr: Basic) -> int:
    import sympy

    return sum(1 for _ in sympy.preorder_traversal(expr))


@lru_cache(maxsize=1024)
def _expected_math(text: str) -> str:
    """An expected answer read like an output's ("25π 平方厘米" is 25\\pi), equations kept whole."""
    return _clean_value(_math_text(text), keep_equation=True)


@lru_cache(maxsize=4096)
def _parse_value(text: str) -> Basic | None:
    """`text` as a sympy value via math-verify's LaTeX reader, or None when it can't be read
    or would be too costly to work with (huge powers, factorials, long text)."""
    text = _math_text(text).replace("\\%", "").replace("%", "").strip()
    text = _TRAILING_JUNK.sub("", text).strip()
    if not text or len(text) > MAX_VALUE_CHARS or _evaluated_while_read(text):
        return None
    parse, _, config = _math_verify()
    try:
        parsed = parse(
            f"\\boxed{{{text}}}", extraction_config=config, fallback_mode="no_fallback", parsing_timeout=None
        )
    except Exception:
        return None
    if not parsed:
        return None
    value = parsed[0]
    return value if _is_tame(value) else None


# latex2sympy computes these while reading, so their size must be checked on the text.
_EAGER_COMMAND = re.compile(r"\\(?:[dt]?binom|choose|gcd|lcm|operatorname|[bp]?mod)(?![A-Za-z])")
_INTEGER = re.compile(r"\d+")


def _evaluated_while_read(text: str) -> bool:
    """True for text whose reading alone could take minutes: \\binom{10^9}{5 \\cdot 10^8}."""
    if not _EAGER_COMMAND.search(text):
        return False
    too_large = any(int(digits) > MAX_FACTORIAL for digits in _INTEGER.findall(text))
    return too_large or "^" in text or "!" in text


def _is_tame(expr: Basic) -> bool:
    """Whether sympy can evaluate and compare `expr` at once: every power, factorial and
    function argument small, and no sum, product, integral or limit still to be worked out.

    Checked bottom-up, so an argument is only evaluated once it is known to be tame itself:
    9^{9^{9^{9}}} stops at 9^{9^9}, whose exponent 387420489 is already over the bound.
    """
    import sympy

    unevaluated = (sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit, sympy.Derivative)
    combinatorial = (
        sympy.factorial,
        sympy.factorial2,
        sympy.subfactorial,
        sympy.binomial,
        sympy.gamma,
        sympy.RisingFactorial,
        sympy.FallingFactorial,
    )
    for node in sympy.postorder_traversal(expr):
        if isinstance(node, unevaluated):
            return False  # an answer is a value; \sum_{i=1}^{10^9} would be summed term by term
        if isinstance(node, sympy.Pow):
            # (x + 1)^{10000} is cheap to write and slow to expand when compared symbolically.
            bound = MAX_EXPONENT if _is_number(node.base) else MAX_SYMBOLIC_EXPONENT
            arguments: tuple[Basic, ...] = (node.exp,)
        elif isinstance(node, combinatorial):
            bound, arguments = MAX_FACTORIAL, node.args
        elif isinstance(node, sympy.Function):
            bound, arguments = MAX_FUNCTION_ARGUMENT, node.args
        else:
            continue
        if not all(_small(argument, bound) for argument in arguments):
            return False
    return True


def _small(argument: Basic, bound: float) -> bool:
    """Whether a numeric `argument` is at most `bound` in size; symbols are never evaluated."""
    if not _is_number(argument):
        return True
    import sympy

    try:
        return abs(complex(sympy.N(argument, 15))) <= bound
    except Exception:  # too large for a float, or not a plain number
        return False


@lru_cache(maxsize=1)
def _math_verify() -> tuple[Callable[..., list[Any]], Callable[..., bool], list[Any]]:
    """math-verify, imported on first use: it pulls in sympy, which a plain pytest run never needs.

    Its SIGALRM timeouts are turned off at each call (they fail outside the main thread);
    the bounds above stand in for them, so its one-time "timeout is disabled" warning is muted.
    """
    from math_verify import LatexExtractionConfig, parse, verify

    for logger_name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(logger_name).addFilter(_TimeoutWarningFilter())
    config = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
    return parse, verify, config


class _TimeoutWarningFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")
