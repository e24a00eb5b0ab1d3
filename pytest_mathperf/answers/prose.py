"""The prose around a value: what counts as holding one, other languages' answer phrases and
scripts, and the decimal comma of the languages that write one."""

from __future__ import annotations

import re

HAS_MATH = re.compile(r"\d|\\[A-Za-z]|π|√")
# An answer in letters only ("b + a", "ab", "$m + n$") ends its sentence: words of one or two
# letters joined by operators, so prose ("look at this again") is never one.
_LETTER_FORMULA = re.compile(
    r"(?:^|(?<=[\s=:$(]))\(?[A-Za-z]{1,2}\)?(?:\s*[-+*/^]\s*\(?[A-Za-z]{1,2}\)?)*[\s$)]*[.。]?\s*$"
)
_LETTER_EXPRESSION = re.compile(r"[A-Za-z\s+\-*/^()]*[A-Za-z][A-Za-z\s+\-*/^()]*")

#: Words of scripts that write no math (Cyrillic, Arabic, Devanagari, kana): prose around a value.
OTHER_SCRIPT = re.compile(r"[\u0400-\u04ff\u0600-\u06ff\u0750-\u077f\u0900-\u097f\u3040-\u30ff]+(?:\^[23])?")

#: "The answer is" in French, Spanish, German, Russian, Japanese, Arabic and Hindi.
ANSWER_PHRASES = (
    r"|\b(?:la\s+bonne\s+)?r[ée]ponse(?:\s+finale)?\s*(?:est|:)|\b(?:la\s+)?respuesta(?:\s+final)?\s*(?:es|:)"
    r"|\b(?:die\s+)?Antwort\s*(?:ist|lautet|:)|\bist\s+die\s+Antwort\b|\bErgebnis\s*(?:ist|lautet|:)"
    r"|Ответ\s*(?::|—|-|равен|составляет)|答えは|答え\s*:|解答\s*:"
    r"|(?:الإجابة|الجواب)\s*(?:هي|هو|:)?|उत्तर\s*(?:है|:)"
)
#: "So", "therefore" in the same languages.
CONCLUSION_WORDS = (
    r"|\b(?:donc|ainsi|por\s+lo\s+tanto|entonces|daher|somit|folglich|итак|следовательно|поэтому)\b"
    r"|したがって|よって|إذن|لذلك|इसलिए|अतः"
)
#: Sentence ends of other scripts: the Devanagari danda, the Arabic full stop and question mark.
SENTENCE_ENDS = "।|۔|؟"

# Languages that write 2,5 for two and a half; only there is "0,15" a number.
_DECIMAL_COMMA_LANGUAGE = re.compile(
    r"€|\b(?:réponse|donc|environ|est\s+de|respuesta|entonces|tanto|aproximadamente|Antwort|Ergebnis|beträgt"
    r"|ungefähr|Meter|litros|euros)\b|[\u0400-\u04ff]",
    re.IGNORECASE,
)
# A comma between digits, not three digits after it (1,250 stays a thousands separator), and not
# directly inside brackets, where it separates coordinates: (1,5).
_DECIMAL_COMMA = re.compile(r"(?<![\d,.(\[{])(\d+),(\d{1,2}|\d{4,})(?![\d,)\]}])")


def holds_value(text: str, *, letters: bool = False) -> bool:
    """Whether `text` gives a value; with `letters`, a formula in letters only counts too."""
    return HAS_MATH.search(text) is not None or (letters and _LETTER_FORMULA.search(text) is not None)


def is_letter_expression(expected: str) -> bool:
    """Whether an expected answer is an expression in letters only ("a + b", "ab")."""
    return _LETTER_EXPRESSION.fullmatch(expected) is not None


def with_decimal_points(text: str) -> str:
    """`text` with its decimal commas as points, where its language writes them ("2500,75 euros")."""
    if "," not in text or not _DECIMAL_COMMA_LANGUAGE.search(text):
        return text
    return _DECIMAL_COMMA.sub(r"\1.\2", text)


_CJK = "[\u3400-\u9fff]"
# A Latin word written against Chinese is a word of the sentence ("T恤", "Maria一共", "App 的"),
# not a variable; a lone lower-case letter ("x的值") stays.
_LATIN_BEFORE_CJK = re.compile(r"(?<![\\A-Za-z])(?:[A-Za-z]{2,}|[A-Z])(?=\s?" + _CJK + ")")
# A bracketed aside in Chinese after a value: "17 辆（每辆 30 座）".
_CJK_ASIDE = re.compile(r"\([^()]*" + _CJK + r"[^()]*\)")


def without_words_in_chinese(text: str) -> str:
    """`text` without Latin words that belong to its Chinese sentence and without Chinese asides."""
    if not re.search(_CJK, text):
        return text
    return _LATIN_BEFORE_CJK.sub(" ", _CJK_ASIDE.sub(" ", text))


def opens_with_chinese(part: str) -> bool:
    """Whether a part of an answer opens with Chinese words: a clause, not a value of its own."""
    return re.match(r"\s*" + _CJK, part) is not None


_TWELVE_HOUR = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})\s*(?:(?P<pm>p\.?\s?m\.?)|a\.?\s?m\.?)(?![A-Za-z])", re.IGNORECASE)
_CHINESE_HALF_DAY = re.compile(r"(?:(?P<pm>下午|晚上|傍晚)|上午|早上|凌晨)\s*(\d{1,2}):(\d{2})(?![\d:])")


def as_24_hour(text: str) -> str:
    """A 12-hour clock time in `text` as a 24-hour one: "7:15 PM" and "下午 7:15" are 19:15."""
    if ":" not in text:
        return text
    text = _TWELVE_HOUR.sub(lambda match: _hour(int(match.group(1)), match.group(2), bool(match.group("pm"))), text)
    return _CHINESE_HALF_DAY.sub(lambda match: _hour(int(match.group(2)), match.group(3), bool(match.group("pm"))), text)


def _hour(hour: int, minutes: str, afternoon: bool) -> str:
    if afternoon and hour < 12:
        hour += 12
    elif not afternoon and hour == 12:
        hour = 0
    return f"{hour}:{minutes}"


# 0.8\overline{3}, 0.\dot{3}, 0.\dot{1}4\dot{2}, "0.8333 repeating" (its last digit repeats).
# Bounded digit runs keep these linear on a long number.
_OVERLINE = re.compile(r"(?<![\d.])(\d{0,20})\.(\d{0,30})\\(?:overline|bar)\s*\{(\d{1,30})\}")
_DOTS = re.compile(r"(?<![\d.])(\d{0,20})\.(\d{0,30})\\dot\s*\{?(\d)\}?(?:(\d{0,30})\\dot\s*\{?(\d)\}?)?")
_REPEATING_WORD = re.compile(
    r"(?<![\d.])(\d{0,20})\.(\d{0,30}?)(\d)\3{0,60}\s*(?:repeating|recurring|循环)"
    r"|(?<![\d.])(\d{0,20})\.(\d{0,30}?)(\d)\6{1,60}(?:…|\.\.\.|\\[lc]?dots)",
    re.IGNORECASE,
)


def repeating_as_fraction(text: str) -> str:
    """Repeating decimals in `text` as exact fractions: 0.8\\overline{3} is \\frac{5}{6}."""
    if "\\overline" in text or "\\bar" in text:
        text = _OVERLINE.sub(lambda match: _fraction(*match.groups()), text)
    if "\\dot" in text:
        text = _DOTS.sub(lambda match: _fraction(match.group(1), match.group(2), "".join(filter(None, match.groups()[2:]))), text)
    if any(word in text for word in ("repeat", "recurring", "循环", "…", "...", "dots")):
        text = _REPEATING_WORD.sub(lambda match: _fraction(*[group for group in match.groups() if group is not None]), text)
    return text


def _fraction(whole: str, fixed: str, period: str) -> str:
    from fractions import Fraction

    value = Fraction(int(whole or "0")) + Fraction(int(fixed or "0"), 10 ** len(fixed))
    value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


# "h(x) = 3x - 1" and "y = 3x - 1" define one function: the names differ, the rules do not.
_FUNCTION_DEFINITION = re.compile(r"^\s*(?:(?P<name>[A-Za-z])\s*\(\s*(?P<argument>[A-Za-z])\s*\)|y)\s*=(?P<rule>[^=<>]+)$")


def function_rules(expected: str, got: str) -> tuple[str, str] | None:
    """The two right sides when both sides define a function of one variable and at least one
    is written f(x) (a "y =" against "x =" is two variables, not two names), else None."""
    want, have = _FUNCTION_DEFINITION.match(expected), _FUNCTION_DEFINITION.match(got)
    if want is None or have is None or not (want.group("name") or have.group("name")):
        return None
    return want.group("rule").strip(), have.group("rule").strip()


_TRIG_FUNCTION = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°)")


def degrees_inside_trigonometry(text: str) -> str:
    """Degrees inside a trigonometric argument in radians: \\cos(90^\\circ - t) is \\cos(\\pi/2 - t)."""
    if not _TRIG_FUNCTION.search(text):
        return text
    return _DEGREES.sub(lambda match: f"\\frac{{{match.group(1)}\\pi}}{{180}}", text)


# "[30 degrees]": a value with its unit word in brackets, not an interval.
_VALUE_IN_BRACKETS = re.compile(r"^\[\s*([^\[\],]*\d[^\[\],]*?\s+[A-Za-z]{2,}\s*)\]\.?$")


def value_in_brackets(text: str) -> str:
    """`text` without the brackets around a value and its unit word ("[30 degrees]")."""
    return _VALUE_IN_BRACKETS.sub(r"\1", text)
