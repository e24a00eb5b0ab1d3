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
OTHER_SCRIPT = re.compile(r"[\u0400-\u04ff\u0600-\u06ff\u0750-\u077f\u0900-\u097f\u3040-\u30ff]+")

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
