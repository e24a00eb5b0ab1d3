"""Turning answer text into values: LaTeX folding, parts, words and units dropped, named parts."""

from __future__ import annotations

import re

from pytest_mathperf.answers.prose import (
    HAS_MATH,
    OTHER_SCRIPT,
    as_24_hour,
    degrees_inside_trigonometry,
    repeating_as_fraction,
    value_in_brackets,
    without_words_in_chinese,
)

#: A part longer than this is prose, not a value, and is skipped.
MAX_PART_CHARS = 1000


_HAS_MATH = HAS_MATH
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}")
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\s*\{[A-Za-z*]*\}")
# Matrices keep their rows and columns: their "&" and "\\" are not part separators. An array in
# brackets is a matrix too; a column vector is one value, not two parts.
_MATRIX = re.compile(
    r"(?:\\left\s*(?P<open>[\[(])\s*)?\\begin\s*\{(?P<env>array|[pbvBV]?matrix|smallmatrix)\}"
    r"(?:\s*\{[lcr|\s]*\})?(?P<body>.*?)\\end\s*\{(?P=env)\}(?(open)\s*\\right\s*[\])])",
    re.DOTALL,
)
_MATRIX_SLOT = re.compile("\x00(\\d+)\x00")
# A system written with a left brace, "\left\{\begin{array}{l} x=2 \\ y=3 \end{array}\right.", is
# its rows, each a part (as in a cases environment), never a matrix.
_SYSTEM = re.compile(
    r"\\left\s*(?:\\\{|\\lbrace)\s*\\begin\s*\{(?P<env>array|aligned)\}(?:\s*\{[lcr|\s]*\})?"
    r"(?P<body>.*?)\\end\s*\{(?P=env)\}(?:\s*\\right\s*\.?)?",  # a sentence cut may have taken the dot
    re.DOTALL,
)
_SYMBOLS = [
    ("π", "\\pi "),
    ("√", "\\sqrt"),
    ("×", "\\times "),
    ("÷", "\\div "),
    ("·", "\\cdot "),
    ("∞", "\\infty "),
    ("≈", "\\approx "),
    ("≤", "\\le "),
    ("≥", "\\ge "),
    ("≠", "\\neq "),
    ("±", "\\pm "),
    ("∓", "\\mp "),
    ("∪", "\\cup "),
    ("∩", "\\cap "),
    ("²", "^2"),
    ("³", "^3"),
    ("{,}", ""),
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
_MATH_REPLACEMENTS = [
    ("\\\\", ", "),  # a LaTeX line break, as between the rows of \begin{cases}
    ("&", " "),
    ("\\qquad", ", "),
    ("\\quad", ", "),
    *_SYMBOLS,
]
# A thousands separator: "1,234", and in LaTeX "10\,000", "12,\! 345", "1{,}234"; a space
# between groups of three digits ("1 000") too. Inside brackets a comma separates elements:
# "(2,100) \cup (100,500)" is two intervals, not a number.
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LATEX_THOUSANDS = re.compile(r"(?<=\d)(?:\\[,!;:]|,\s*\\[!,])\s*(?=\d{3}(?!\d))")
_SPACE_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?: \d{3})+(?!\d)")
# 1.25 万 is 12 500; 3 亿 is 300 000 000. (千 alone is left: 千米 and 千克 are units.)
_CHINESE_MULTIPLIER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(万亿|千亿|百亿|千万|百万|亿|万)")
_MULTIPLIERS = {"万": 4, "百万": 6, "千万": 7, "亿": 8, "百亿": 10, "千亿": 11, "万亿": 12}
# sin 30° is 1/2: a degree sign on a trigonometric argument is a unit of angle, not a unit to drop.
_DEGREE = r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)"
_TRIG = r"\\(sin|cos|tan|cot|sec|csc)\s*"
_DEGREE_ARGUMENT = re.compile(
    _TRIG + r"\(\s*(-?\d+(?:\.\d+)?)" + _DEGREE + r"\s*\)|" + _TRIG + r"(-?\d+(?:\.\d+)?)" + _DEGREE
)
_MATHRM_LETTER = re.compile(r"\\(?:mathrm|mathit|rm|text)\s*\{\s*([A-Za-z])\s*\}")
_PERCENT_SIGN = re.compile(r"(?<!\\)%")
_CJK_CHARACTER = "[\u3400-\u9fff\uf900-\ufaff]"
_CJK = re.compile(_CJK_CHARACTER + "+")
# Words between two numbers keep them apart: "1小时加工200个" is 1 and 200, never 1200.
_CJK_BETWEEN_NUMBERS = re.compile(r"(?<=\d)\s*" + _CJK_CHARACTER + r"+\s*(?=[-+]?\d)")
# A mixed number: "2又1/2" (Chinese), "2 1/2" (plain text) is 2 + 1/2.
_MIXED_NUMBER = re.compile(r"(?<![\d.,/])(\d+)(?:\s*又\s*|\s+)(\d+)\s*/\s*(\d+)(?![\d./])")
_LEADING_WORDS = re.compile(r"^\s*(?:(?<!\\)\b(?!pi\b)[A-Za-z]{2,}\b\s*:?\s+)+")
_UNIT = r"(?:cm|mm|km|dm|kg|mg|ml|km/h|m/s|cm/s|kph|mph)(?:\s*\^\s*\{?[23]\}?)?"
#: One unit, word, degree sign or punctuation mark at the end of a value.
_JUNK_AT_END = re.compile(
    r"\s*(?:(?<![A-Za-z\\])" + _UNIT + r"|(?<=[\d}.]\s)[mgslh](?:\s*\^\s*\{?[23]\}?)?"
    r"|(?<=\s)(?<!\\)(?!pi\b)[A-Za-z]{2,}(?:\s*\^\s*\{?[23]\}?)?"
    r"|(?<![A-Za-z\\])\(\s*(?:" + _UNIT + r")?\s*\)"  # "30（元）", "25π (cm²)": a unit in brackets, or the bracket a word left
    r"|℃|°\s*[CF]\b|°|\^\s*\{?\\circ\}?(?:\s*[CF]\b)?|\\circ|\\degree|/|[.,;:])\s*$"
)
# Currency signs before an amount: "￥60" is 60 (the dollar sign is TeX's, and read there).
_CURRENCY = re.compile(r"[¥￥€£]\s*")


_PERCENT_END = re.compile(r"\s*\\%\s*$")
#: Kept at the end of a value read with a percent sign; equality decides what it means.
PERCENT = "\\%"
_EQUALS = re.compile(r"(?<![<>!\\])=(?!=)")
_APPROX = re.compile(r"\\approx|\\sim(?![a-z])")
# A verb of equality: in "The largest n is 34" or "3 + 4 等于 7" the value is what follows it.
_EQUALITY_VERB = re.compile(
    r"\b(?:is|are|equals|equal\s+to|was|becomes)\b|的值为|的值是|等于|是|为", re.IGNORECASE
)


def strip_trailing_junk(text: str) -> str:
    """``text`` without the units, words and punctuation that end it, one at a time from the end.

    One regular expression repeating over them would backtrack exponentially when the end is not
    all junk (a unit repeated by a model stuck in a loop, then a stray bracket): a unit like ``cm``
    is also a word, so n repeats can be split 2ⁿ ways before the match fails.
    """
    while (match := _JUNK_AT_END.search(text)) is not None:
        text = text[: match.start()]
    return text


# {x | x > 3} is the set of x > 3: the condition is the answer, compared with its set.
_SET_BUILDER = re.compile(r"\\?\{\s*[A-Za-z]\s*(?:\||\\mid)\s*([^{}|]*?)\s*\\?\}")
_PERCENT_WORD = re.compile(r"(?<=\d)\s*(?:percent|per\s+cent)\b", re.IGNORECASE)
_PERCENT_ZH = re.compile(r"百分之\s*(\d+(?:\.\d+)?)")
_OVER = re.compile(r"(?<![\d.])(\d+)\s+over\s+(\d+)(?![\d.])", re.IGNORECASE)


def _math_text(text: str) -> str:
    """Answer text with math symbols in LaTeX and decoration dropped; parts and names intact."""
    matrices: list[str] = []

    def keep_matrix(match: re.Match[str]) -> str:
        body, env = match.group("body"), match.group("env")
        if env in ("array", "matrix", "smallmatrix"):  # delimiters written around, or none
            env = "bmatrix" if match.group("open") == "[" else "pmatrix"
        rows = body.split("\\\\")
        for old, new in _SYMBOLS:
            rows = [row.replace(old, new) for row in rows]
        body = " \\\\ ".join(rows)
        matrices.append(f"\\begin{{{env}}} {' '.join(body.split())} \\end{{{env}}}")
        return f"\x00{len(matrices) - 1}\x00"

    if "\\begin" in text:
        text = _SYSTEM.sub(_system_rows, text)
        text = _MATRIX.sub(keep_matrix, text)
    if "circ" in text or "°" in text:
        text = _DEGREE_ARGUMENT.sub(_in_radians, text)
        text = degrees_inside_trigonometry(text)
    text = _MATHRM_LETTER.sub(lambda match: match.group(1), text)
    if "|" in text or "mid" in text:
        text = _SET_BUILDER.sub(lambda match: f" {match.group(1)} ", text)
    text = _PERCENT_WORD.sub("%", text)
    text = _PERCENT_ZH.sub(lambda match: f"{match.group(1)}%", text)
    text = _OVER.sub(lambda match: f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}", text)
    text = _TEXT_WRAPPER.sub(lambda match: f" {match.group(1)} ", text)
    text = _ENVIRONMENT.sub(" ", text)
    text = _LATEX_THOUSANDS.sub("", text)
    for old, new in _MATH_REPLACEMENTS:
        text = text.replace(old, new)
    text = _PERCENT_SIGN.sub(r"\\%", text)
    text = _drop_thousands(text)
    text = _SPACE_THOUSANDS.sub(lambda match: match.group().replace(" ", ""), text)
    text = _CHINESE_MULTIPLIER.sub(_multiplied, text)
    if matrices:
        text = _MATRIX_SLOT.sub(lambda match: matrices[int(match.group(1))], text)
    return text


def _system_rows(match: re.Match[str]) -> str:
    return " " + ", ".join(row.replace("&", " ") for row in match.group("body").split("\\\\")) + " "


def _in_radians(match: re.Match[str]) -> str:
    function = match.group(1) or match.group(3)
    degrees = match.group(2) or match.group(4)
    return f"\\{function}\\left(\\frac{{{degrees}\\pi}}{{180}}\\right)"


def _drop_thousands(text: str) -> str:
    """Drop each thousands comma that is not directly inside ( or [ (where it separates)."""
    pieces = []
    depth = 0
    start = 0
    for match in _THOUSANDS.finditer(text):
        between = text[start : match.start()]
        depth += between.count("(") + between.count("[") - between.count(")") - between.count("]")
        pieces.append(between)
        if depth > 0:
            pieces.append(",")
        start = match.end()
    pieces.append(text[start:])
    return "".join(pieces)


def _multiplied(match: re.Match[str]) -> str:
    from decimal import Decimal

    value = Decimal(match.group(1)).scaleb(_MULTIPLIERS[match.group(2)])
    return format(value.normalize(), "f")


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


# The value before it again, rounded: "25π，约等于 78.5", "20/7, or approximately 2.857" — no part of its own.
_APPROXIMATION_PART = re.compile(
    r"(?:or\s+|i\.e\.\s*)?(?:approximately|approx\.|about|roughly|约等于|约为|约合|大约|约|≈|\\approx)", re.IGNORECASE
)
# ... or in brackets after it: "20/7 (about 2.86)".
_APPROXIMATION_ASIDE = re.compile(
    r"\s*\((?:approximately|approx\.|about|roughly|约|≈|\\approx)[^()]{0,40}\)", re.IGNORECASE
)


def answer_parts(answer: str) -> list[str]:
    """The parts of an answer as math text, without the rounded restatements of a value: a part
    that says "approximately" right after one that gives the value exactly."""
    parts = _split_parts(_APPROXIMATION_ASIDE.sub("", _math_text(answer)))
    # "approximately 0.38 and approximately 2.62" are two values, each rounded
    rounded = [_APPROXIMATION_PART.search(part) is not None for part in parts]
    return [
        part for index, part in enumerate(parts)
        if not (index and _APPROXIMATION_PART.match(part) and not rounded[index - 1])
    ]


def _values(answer: str, *, groups: bool = False) -> list[str]:
    """The readable values of a several-part answer, in order; parts with no value dropped.

    A lone bracketed group holds the parts: "(x, y) = (20/7, 25/7)" gives 20/7 and 25/7 —
    unless the parts wanted are `groups` themselves (pairs, intervals), when only a group of
    groups is opened: "\\{(1, 2), (3, 4)\\}". "1 \\pm 2" gives both 3 and -1.
    """
    values = [value for value in (_clean_value(part) for part in answer_parts(answer)) if value]
    group = _lone_group(values[0]) if len(values) == 1 else None
    if group is not None:
        inner = [value for value in (_clean_value(part) for part in _split_parts(group)) if value]
        if len(inner) > 1 and (not groups or all(is_group(value) for value in inner)):
            values = inner
    return [value for item in values for value in (both_roots(item) or [item])]


def is_group(value: str) -> bool:
    """Whether `value` is one bracketed group: a pair, a tuple, an interval or a set."""
    return _lone_group(value.strip()) is not None


def _lone_group(value: str) -> str | None:
    """The inside of a value that is one bracketed group: (a, b), [a, b] or \\{a, b\\}."""
    if value.startswith("\\{") and value.endswith("\\}"):
        return value[2:-2]
    if value[:1] == "{" and _closing_paren(value, 1) == len(value) - 1 and "," in value:
        return value[1:-1]  # a set written in plain braces: {1, 4, 9}
    if value[:1] in "([" and _closing_paren(value, 1) == len(value) - 1:
        return value[1:-1]
    return None


_PLUS_MINUS = re.compile(r"\\pm(?![A-Za-z])|\\mp(?![A-Za-z])")


def both_roots(text: str) -> list[str] | None:
    """"1 \\pm 2" (or "x = 1 ± 2") as its two values ["1 + 2", "1 - 2"]; None without one ±.

    Only a single ± is read; an equation gives its right side.
    """
    math = _math_text(text)
    signs = _PLUS_MINUS.findall(math)
    if len(signs) != 1:
        return None
    math = _top_level_split(math, _EQUALS)[-1]
    first, second = ("+", "-") if signs[0] == "\\pm" else ("-", "+")
    return [_PLUS_MINUS.sub(first, math, count=1).strip(), _PLUS_MINUS.sub(second, math, count=1).strip()]


def set_elements(text: str) -> list[str] | None:
    """The elements of an expected set "\\{a, b\\}" or bare list "a, b" (two or more), else None.

    A parenthesised group is a point or an interval, never a set of its coordinates.
    """
    math = _math_text(text).strip()
    inner = math[2:-2] if math.startswith("\\{") and math.endswith("\\}") else math
    parts = _split_parts(inner)
    if len(parts) < 2 or "=" in math:
        return None
    return parts


def _clean_value(text: str, *, keep_equation: bool = False) -> str:
    """One part's value as math text: the right side of the last `=` or verb of equality
    ("is", "等于", "为"), without words or units. A percent sign is kept as a trailing ``\\%``."""
    text = " ".join(text.split())
    if len(text) > MAX_PART_CHARS:
        return ""  # prose, not a value; and the regexes below must stay linear
    text = repeating_as_fraction(as_24_hour(text))
    text = value_in_brackets(_after_equality_verb(text).strip())
    approx = _APPROX.split(text, maxsplit=1)
    if len(approx) == 2 and _HAS_MATH.search(_CJK.sub(" ", approx[0].split("=")[-1])):
        text = approx[0]
    elif len(approx) == 2:
        text = approx[1]
    if not keep_equation:
        text = _top_level_split(text, _EQUALS)[-1]
    text = _MIXED_NUMBER.sub(r"(\1+\2/\3)", text)
    text = _CJK_BETWEEN_NUMBERS.sub(", ", text)
    text = _CJK.sub(" ", without_words_in_chinese(text))
    text = OTHER_SCRIPT.sub(" ", text)
    text = _CURRENCY.sub("", text)
    text = _LEADING_WORDS.sub("", text)
    text = strip_trailing_junk(text)
    percent = False
    while (match := _PERCENT_END.search(text)) is not None:
        percent = True
        text = strip_trailing_junk(text[: match.start()])
    value = " ".join(text.strip(" :=,;").split())
    return f"{value}{PERCENT}" if percent and value else value


def _after_equality_verb(text: str) -> str:
    """The text after the last verb of equality that is followed by a value, else all of it.

    A negated verb ("is not", "isn't", "不等于", "不是") says what the value is not: it reads
    as the relation "\\neq 5", never as 5.
    """
    matches = list(_EQUALITY_VERB.finditer(text))
    for index in range(len(matches) - 1, -1, -1):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        after = text[matches[index].end() : end]
        if not _HAS_MATH.search(after):
            continue
        if _NEGATED_BEFORE.search(text[: matches[index].start()]) or _NEGATED_AFTER.match(after):
            return f"\\neq {_NEGATED_AFTER.sub('', after, count=1).strip()}"
        return after
    return text


_NEGATED_BEFORE = re.compile(r"(?:不|非|并非|\bnot\s*|n't\s*|\bnever\s*|\bdoes\s+not\s*)$", re.IGNORECASE)
_NEGATED_AFTER = re.compile(r"\s*(?:not|never|n't|不)\b", re.IGNORECASE)


def shown(value: str) -> str:
    """A value as reported: without the percent marker equality reads."""
    return value[: -len(PERCENT)].rstrip() if value.endswith(PERCENT) else value


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

