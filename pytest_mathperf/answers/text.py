"""Text answers: a choice letter ("(C)", "答案是 B", "故选 D"), yes or no (是/否), or words ("odd").

An expected answer is text when it is one capital letter A-J (optionally in parentheses), a
yes/no word in English or Chinese, words in Latin letters that are not a function name
("odd", "No solution"), or Chinese characters only ("奇函数"). The answer is read from the last
box, else the last answer phrase ("the answer is", "答案是", "选", "option"), else the last line
(closing words such as "Hope this helps!" skipped). A choice matches its letter; yes and no
match any of their words (是/对/正确/true … and 否/不是/错误/false …); words match when the
answer is those words, or ends with them and holds no negation ("neither even nor odd" is not
"odd", "非奇非偶函数" is not "偶函数").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pytest_mathperf.answers.extract import _FOLD, _STRONG_ANCHOR, _sentence_after

_CHOICE = re.compile(r"^\(?([A-J])\)?\.?$")
_WORDS = re.compile(r"^[A-Za-z][a-z]+(?:[ -][A-Za-z]?[a-z]+)*$")
_CHINESE = re.compile(r"^[\u3400-\u9fff]+$")
_NOT_WORDS = frozenset(
    "sin cos tan cot sec csc log ln exp sqrt pi inf infty max min arcsin arccos arctan sinh cosh tanh".split()
)
_YES = ("yes", "true", "correct", "是", "对", "正确", "能", "可以", "成立", "会", "有")
_NO = ("no", "false", "incorrect", "否", "不是", "不对", "错误", "错", "不能", "不可以", "不成立", "不会", "没有")
_NEGATION = re.compile(r"\b(?:not|neither|nor|never)\b|不|非|没|既不|并非", re.IGNORECASE)
_UNWRAP = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_DECORATION = re.compile(r"\$|\*\*|\\[()\[\]]|\\,|\\ ")
_CHOICE_ANCHOR = re.compile(
    r"\banswer\s*[-–]\s*|\b(?:option|choice)\s*(?:is\b|:)|\b(?:option|choice)\s+(?=\(?[A-J]\b)"
    r"|\b(?:we\s+)?(?:choose|pick|select)\b|(?:故|应|答案)?选\s*(?:择|项)?\s*(?:是|为|:)?"
    r"|\bgo\s+with\b|\b(?:correct|right|best)\s+(?:answer|option|choice)\s+(?:is|would\s+be)\b"
    r"|\bit\s+(?:is|must\s+be)\s+(?:definitely\s+|clearly\s+)?(?=\(?[A-J]\b)"
    r"|\br[ée]ponse\s+(?:correcte\s+)?est\b|\brespuesta\s+(?:correcta\s+)?es(?:\s+la)?\b|\bAntwort\s+ist\b",
    re.IGNORECASE,
)
# Letters ruled out: "A, not B or D", "选 D，不是 C", "B et non A", "(D), rather than (B)".
_RULED_OUT = re.compile(
    r"(?:\bnot|\bnon|\bnicht|\bno|\brather\s+than|\binstead\s+of|而不是|不是|而非|并非)\s*\(?[A-J]\)?(?![A-Za-z])"
    r"(?:\s*(?:,|\bor\b|\band\b|\bnor\b|\bou\b|\bet\b|\bo\b|\by\b|或|和|、)\s*\(?[A-J]\)?(?![A-Za-z]))*"
)
_LEADING_CHOICE = re.compile(r"^\(?([A-J])\)?(?=$|[\s.:,;)。，])")
_ONLY_CHOICE = re.compile(r"^\(?([a-jA-J])\)?\.?$")
# A capital letter standing alone in a short final sentence ("We choose D", "Therefore: B");
# "A" followed by a lower-case word is the article ("A prime number"), not choice A.
_LONE_CHOICE = re.compile(r"(?<![A-Za-z\\])([B-J]|A(?!\s+(?!is\b|was\b)[a-z]))(?![A-Za-z])")
_PARENTHESISED_CHOICE = re.compile(r"\(([A-J])\)")
_SENTENCES = re.compile(r"[.?!;。？！；]")
_HEDGE = re.compile(r"\bor\b|\beither\b|或|还是|可能", re.IGNORECASE)
_CLOSING = re.compile(r"^\W*(?:i\s+)?(?:hope|let\s+me\s+know|feel\s+free|希望|如有)", re.IGNORECASE)

TextKind = Literal["choice", "yes_no", "words"]


@dataclass(frozen=True)
class TextAnswer:
    """An expected answer that is text, normalised: "C", "yes"/"no", or the words in lower case."""

    kind: TextKind
    value: str


def text_answer(expected: object) -> TextAnswer | None:
    """The expected answer as a text answer, or None when it is a value to compare as math."""
    if not isinstance(expected, str):
        return None
    text = _normalised(expected)
    if (choice := _CHOICE.match(text)) is not None:
        return TextAnswer("choice", choice.group(1))
    yes_no = _yes_or_no(text)
    if yes_no is not None and text.lower() in (*_YES, *_NO):
        return TextAnswer("yes_no", yes_no)
    if _WORDS.match(text) and text.lower() not in _NOT_WORDS and (len(text) > 2 or text.lower() in ("no",)):
        return TextAnswer("words", text.lower())
    if _CHINESE.match(text):
        return TextAnswer("words", text)
    return None


def _normalised(text: str) -> str:
    text = text.translate(_FOLD)
    text = _UNWRAP.sub(lambda match: match.group(1), text)
    text = _DECORATION.sub(" ", text)
    return " ".join(text.split()).strip(" .。!?:")


def _yes_or_no(text: str) -> str | None:
    """"yes" or "no" when `text` opens with one of their words, standing alone: "是的" and
    "Yes," do, "否则" ("otherwise") and "能被 7 整除" do not; "不是…" and "没有…" always do."""
    lowered = text.lower()
    for words, meaning in ((_NO, "no"), (_YES, "yes")):
        for word in words:
            if not lowered.startswith(word):
                continue
            following = lowered[len(word) : len(word) + 1]
            if word.isascii():
                alone = not following.isalpha()
            else:
                alone = word[0] in "不没" or following in ("", "的", ",", "，", " ", "!", "！", "。", ".", "啊")
            if alone:
                return meaning
    return None


def text_candidate(folded: str, boxes: list[str]) -> str | None:
    """The text the answer is read from: the last box, else answer phrase, else last line."""
    if boxes:
        return _normalised(boxes[-1])
    anchors = [*_STRONG_ANCHOR.finditer(folded), *_CHOICE_ANCHOR.finditer(folded)]
    for match in sorted(anchors, key=lambda match: match.end(), reverse=True):
        if match.end() == match.start():
            continue
        sentence = _normalised(_sentence_after(folded, match.end()))
        if sentence:
            return sentence
    for line in reversed(folded.splitlines()):
        line = _normalised(line)
        if line and not _CLOSING.match(line):
            return line
    return None


def matches(answer: TextAnswer, candidate: str) -> tuple[bool, str]:
    """Whether `candidate` gives the expected text answer, and what was read from it."""
    if answer.kind == "choice":
        letter = _choice_in(candidate)
        return letter == answer.value, letter or candidate
    if answer.kind == "yes_no":
        meaning = _last_yes_or_no(candidate)
        return meaning == answer.value, meaning or candidate
    lowered = candidate.lower()
    if lowered == answer.value:
        return True, candidate
    if _NO_VALUE.search(answer.value) and _NO_VALUE.search(candidate):
        return True, candidate  # "undefined" answered as "无意义", "does not exist" as "DNE"
    at = lowered.rfind(answer.value)
    ends = at >= 0 and at + len(answer.value) == len(lowered)
    boundary = at <= 0 or not answer.value.isascii() or not lowered[at - 1].isalnum()
    return ends and boundary and not _NEGATION.search(lowered), candidate


def _last_yes_or_no(candidate: str) -> str | None:
    """The yes or no of the last sentence that opens with one: "Is 91 prime? No." is no; else
    a closing "true" or "false" ("The statement is false.") unless negated."""
    sentences = [sentence.strip(" *\"'") for sentence in _SENTENCES.split(candidate)]
    for sentence in reversed(sentences):
        meaning = _yes_or_no(sentence)
        if meaning is not None:
            return meaning
    last = next((sentence for sentence in reversed(sentences) if sentence), "")
    closing = last.lower().rsplit(" ", 1)[-1]
    if closing in ("true", "false") and not _NEGATION.search(last):
        return "yes" if closing == "true" else "no"
    return None


def _choice_in(candidate: str) -> str | None:
    """The choice letter `candidate` gives; None when it gives none, or hedges ("(B) or (C)")."""
    candidate = _RULED_OUT.sub(" ", candidate).strip(" ,")
    letters = set(_PARENTHESISED_CHOICE.findall(candidate))
    if len(letters) > 1 and _HEDGE.search(candidate):
        return None
    if (only := _ONLY_CHOICE.match(candidate)) is not None:
        return only.group(1).upper()
    if (leading := _LEADING_CHOICE.match(candidate)) is not None:
        return leading.group(1)
    inside = _PARENTHESISED_CHOICE.findall(candidate)
    if inside:
        return inside[-1]
    lone = set(_LONE_CHOICE.findall(candidate)) if len(candidate.split()) <= 6 else set()
    return lone.pop() if len(lone) == 1 else None


_NO_VALUE = re.compile(
    r"\b(?:undefined|does\s+not\s+exist|doesn't\s+exist|no\s+(?:real\s+)?solutions?|dne|none)\b"
    r"|不存在|无解|无意义|没有(?:实数)?解",
    re.IGNORECASE,
)


def no_value_answer(folded: str, boxes: list[str]) -> str | None:
    """The final answer when it says there is no value ("undefined", "无解"): an answer, and
    a wrong one wherever a value is expected."""
    candidate = text_candidate(folded, boxes)
    if candidate and _NO_VALUE.search(candidate):
        return candidate
    return None
