"""Turning answer text into values: LaTeX folding, parts, words and units dropped, named parts."""

from __future__ import annotations

import re

#: A part longer than this is prose, not a value, and is skipped.
MAX_PART_CHARS = 1000


_HAS_MATH = re.compile(r"\d|\\[A-Za-z]|π|√")
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

