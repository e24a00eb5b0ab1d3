"""Finding the final answer in a model's output: boxes, answer phrases, the last line."""

from __future__ import annotations

import re

from pytest_mathperf.answers.prose import (
    ANSWER_PHRASES,
    CONCLUSION_WORDS,
    SENTENCE_ENDS,
    holds_value,
    with_decimal_points,
)
from pytest_mathperf.answers.values import _HAS_MATH, _PLUS_MINUS, _math_text, _named_in, _values

#: Only the end of an output is read: the answer is there, and the work stays bounded.
MAX_OUTPUT_CHARS = 4000



# Full-width forms (U+FF01..U+FF5E) map onto ASCII; the Chinese comma keeps a space after it so
# that "17，190" stays two parts and never reads as a thousands separator.
_FOLD = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FOLD.update({ord("，"): ", ", ord("；"): "; ", ord("\u3000"): " ", ord("\u2212"): "-", ord("\u2013"): "-"})

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_STRONG_ANCHOR = re.compile(
    r"\b(?:final\s+answers?|answers?)\s*(?:is|are|:)|\bfinal\s+answer\b"
    r"|最终答案\s*(?:是|为|:)?|答案\s*(?:是|为|:)|答\s*:|【答案】|^\s*####" + ANSWER_PHRASES,
    re.IGNORECASE | re.MULTILINE,
)
_WEAK_ANCHOR = re.compile(
    r"\b(?:so|thus|therefore|hence|we\s+get|we\s+find|we\s+obtain)\b"
    r"|\bi\.e\.|\bthat\s+is,|所以|因此|故|综上所述|综上|解得|求得|可得|得到|(?<![立随])即(?![使便])" + CONCLUSION_WORDS,
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"。|\n|\.(?!\d|\\(?:dot|overline)\b|m\.)|(?<!\\)[!?](?!=)|" + SENTENCE_ENDS)
_CHECK_LINE = re.compile(
    r"\W*(?:检验|验算|验证|(?:sanity\s+)?check(?:ing)?\b|verif(?:y|ication)\b)", re.IGNORECASE
)
_PROSE = re.compile(
    r"\b(?:because|since|which|where|when|as|if)\b|因为|由于|其中|验证", re.IGNORECASE
)


# Display math and environments spread over lines are one value: "Here is the matrix:\n$$\n
# \begin{pmatrix} ... \end{pmatrix}\n$$" must not read its last line alone. Bounded lengths
# keep the search linear on a long output.
_DISPLAY_MATH = re.compile(
    r"\$\$[^$]{1,1500}?\$\$|\\\[.{1,1500}?\\\]|\\begin\{([A-Za-z*]{1,20})\}.{1,1500}?\\end\{\1\}", re.DOTALL
)


_EMPTY_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{\s*\}")
# TeX takes one token as the argument: "\boxed 9", "$\boxed -4$" box a value without braces.
_BARE_BOX = re.compile(r"\\(boxed|fbox)\s+([-+]?\s?(?:\d+(?:\.\d+)?|[A-Za-z](?![A-Za-z])))")


def _one_line(match: re.Match[str]) -> str:
    return " ".join(match.group().split())


class _Reading:
    """One output's answer region, with the answer text found once and reused by every form."""

    def __init__(self, region: str, *, after_think: bool, truncated: bool) -> None:
        folded = _EMPTY_BOX.sub(" ", region.translate(_FOLD))  # "write it in \\boxed{}" echoed
        folded = with_decimal_points(folded)
        folded = _BARE_BOX.sub(lambda match: f"\\{match.group(1)}{{{match.group(2)}}}", folded)
        self.folded = _without_notation(_DISPLAY_MATH.sub(_one_line, folded))
        self.after_think = after_think
        spans = _box_spans(self.folded)
        self.last_box_span = spans[-1][:2] if spans else None
        self.boxes = [contents for _, _, contents in spans]
        self.last_box = _last_box(self.folded, spans)
        # Cut off while writing a box: what is in it so far ("\\boxed{12") may not be the answer.
        box_starts = [match.end() for match in _BOX.finditer(self.folded)] if truncated else []
        self.cut_in_box = bool(box_starts) and _closing_brace(self.folded, box_starts[-1]) is None
        # A cut-off generation may have been about to give the parts still missing.
        self.may_continue = truncated

    @property
    def where(self) -> str:
        return "after </think>" if self.after_think else "in the output"

    def nothing_found(self) -> str:
        return f"no \\boxed{{}}, 'the answer is' or final line with a value found {self.where}"

    def final_answer(self, *, require_anchor: bool = False, letters: bool = False) -> str | None:
        """The text of the final answer: last box, else last answer phrase, else last line.
        `letters`: an expression in letters only ("b + a") is a value too."""
        if self.cut_in_box:
            return None
        if self.boxes:
            return self.last_box
        strong = self._anchored_at(_STRONG_ANCHOR, letters=letters)
        if strong is not None or require_anchor:
            return strong[0] if strong else None
        line = self._last_line_at(letters=letters)
        return line[0] if line else None

    def final_parts(self, count: int, *, groups: bool = False) -> list[str]:
        """The values of a several-part answer: the last box if it holds enough, else the last
        `count` parts over all boxes, else the parts of the answer phrase or last line.
        `groups`: the parts are pairs or intervals, so a lone pair is one part, not two."""
        if self.cut_in_box:
            return []
        if self.boxes:
            last = _values(self.last_box or "", groups=groups)
            if len(last) == 1 and count > 1:
                last = column_entries(last[0]) or last
            if len(last) >= count or self.last_box != self.boxes[-1]:  # boxes joined as one answer are all of it
                return last
            every = [value for box in self.boxes for value in _values(box, groups=groups)]
            return every[-count:]
        answer = self.final_answer()
        if answer and "分别" in answer and _HAS_MATH.search(answer.rsplit("分别", 1)[1]):
            answer = answer.rsplit("分别", 1)[1]  # "A、B 两地分别有 40 人和 60 人": the labels are no parts
        values = _values(answer, groups=groups) if answer else []
        if len(values) < count:
            labelled = [value for line in _labelled_lines(self.folded, count) for value in _values(line, groups=groups)]
            values = labelled if len(labelled) == count else values
        return values

    def gives_both_roots(self) -> bool:
        """Whether the final answer is written with ± (its two values come in no fixed order)."""
        answer = self.final_answer()
        return answer is not None and _PLUS_MINUS.search(_math_text(answer)) is not None

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

    def answer_text(self) -> str | None:
        """The final answer as text, values or not: the last box, else the last answer phrase."""
        if self.cut_in_box:
            return None
        if self.boxes:
            return self.last_box
        return self._anchored(_STRONG_ANCHOR, needs_value=False)

    def answer_span(self) -> tuple[int, int] | None:
        """Where the final answer lies in `folded` (start, end), for what is said around it."""
        if self.boxes:
            return self.last_box_span
        found = self._anchored_at(_STRONG_ANCHOR) or self._last_line_at()
        return found[1:] if found else None

    def _anchored(self, anchor: re.Pattern[str], *, needs_value: bool = True) -> str | None:
        found = self._anchored_at(anchor, needs_value=needs_value)
        return found[0] if found else None

    def _anchored_at(
        self, anchor: re.Pattern[str], *, needs_value: bool = True, letters: bool = False
    ) -> tuple[str, int, int] | None:
        """The sentence after the last occurrence of `anchor` that holds a value, with its span.
        An anchor in a conditional ("若…，则答案为 32") gives another reading, not the answer; a
        conclusion drawn after the answer ("答案是17辆。因此需要 32 辆") replaces it."""
        for match in reversed(list(anchor.finditer(self.folded))):
            if _CONDITIONAL.search(self.folded, _sentence_start(self.folded, match.start()), match.start()):
                continue
            text = _sentence_after(self.folded, match.end())
            if holds_value(text, letters=letters) or (text and not needs_value):
                end = _sentence_end(self.folded, match.end())
                return self._later_conclusion(end) or (text, match.start(), end)
        return None

    def _later_conclusion(self, start: int) -> tuple[str, int, int] | None:
        """A sentence after `start` that opens with "因此"/"therefore" and gives a value."""
        for match in _CONCLUSION_OPENING.finditer(self.folded, start):
            text = _sentence_after(self.folded, match.end())
            if _HAS_MATH.search(text):
                return text, match.start(), _sentence_end(self.folded, match.end())
        return None

    def _last_line(self) -> str | None:
        found = self._last_line_at()
        return found[0] if found else None

    def _last_line_at(self, *, letters: bool = False) -> tuple[str, int, int] | None:
        """The last line holding a value (a closing "Hope this helps!" is skipped), read from
        its last "so"/"所以" on, up to the end of that sentence; with where that text lies."""
        end = len(self.folded)
        for line in reversed(self.folded.splitlines(keepends=True)):
            start = end - len(line)
            found = _line_answer(line, letters=letters)
            if found is not None:
                text, offset = found
                return text, start + offset, start + offset + len(text)
            end = start
        return None


def _line_answer(line: str, *, letters: bool = False) -> tuple[str, int] | None:
    """A line's answer text and where it starts in the line, or None."""
    if line.rstrip(" \t\r\n*").endswith(":"):
        return None  # "Question 3:" introduces what follows; it is not the answer
    if _CHECK_LINE.match(line) and not _WEAK_ANCHOR.search(line):
        return None  # "检验：17 + 19 = 36" checks the answer above it (unless it concludes: "…，所以 x=3")
    # From the last "so" on; where nothing follows it ("…, so this checks out"), from the one before.
    for after in [*(anchor.end() for anchor in reversed(list(_WEAK_ANCHOR.finditer(line)))), 0]:
        text = _cut_prose(_SENTENCE_END.split(line[after:].strip(" \t\r\n:,*"), maxsplit=1)[0]).strip()
        if holds_value(text, letters=letters):
            return text, max(line.find(text, after), after)
    return None


# "Domain: [0, 5)" on one line, "Range: (1, 7]" on the next: parts each under a label.
_LABELLED_LINE = re.compile(r"^\W*[^\W\d_][\w ()]{0,30}?\**\s*:\s*(?P<value>\S.*)$")


def _labelled_lines(text: str, count: int) -> list[str]:
    """The values of the last `count` lines when each is a label and a value, else none."""
    lines = [line for line in text.strip().splitlines() if line.strip()][-count:]
    matches = [_LABELLED_LINE.match(line.strip()) for line in lines]
    if len(lines) < 2 or not all(matches):
        return []
    return [match.group("value") for match in matches if match]


# A number, a word, then a colon: "17 buses: …" (never a ratio "3 : 4" or a clock "7:15").
_DETAIL_COLON = re.compile(r"(?<=\d)\s*[^\W\d_]+\s*:\s")
# English says another reading with "would" ("If …, the answer would be 18"), which is no anchor;
# "If we add them, the answer is 84" is the answer.
_CONDITIONAL = re.compile(r"若|如果|假如|假设|倘若|要是")
_CONCLUSION_OPENING = re.compile(
    r"(?:^|(?<=[。.!?！？\n]))\s*(?:因此|所以|故|\b(?:therefore|thus|hence|so)\b)", re.IGNORECASE
)


def _sentence_start(text: str, index: int) -> int:
    return max((match.end() for match in _SENTENCE_END.finditer(text, 0, index)), default=0)


def _sentence_end(text: str, start: int) -> int:
    rest = _SENTENCE_END.search(text, start)
    return rest.end() if rest else len(text)


def _sentence_after(text: str, start: int) -> str:
    rest = text[start:].lstrip(" \t:*")
    if rest.startswith("\n"):  # a heading such as "**Final Answer**" then the value below
        rest = rest.lstrip(" \t\n*:")
    return _cut_prose(_SENTENCE_END.split(rest, maxsplit=1)[0]).strip()


def _cut_prose(text: str) -> str:
    """`text` up to its first "because", "since", "因为"…; but "Since a = b, the value is c"
    opens with its reason, and the value is in the clause after the comma. A colon after a
    number introduces detail ("17 buses: 8 large and 9 small")."""
    detail = _DETAIL_COLON.search(text)
    if detail is not None:
        text = text[: detail.start()]
    for _ in range(8):
        pieces = _PROSE.split(text, maxsplit=1)
        if len(pieces) == 1 or _HAS_MATH.search(pieces[0]):
            return pieces[0]
        comma = pieces[1].find(", ")
        if comma < 0:
            return pieces[0]
        text = pieces[1][comma + 2 :]
    return ""


_COLUMN_VECTOR = re.compile(r"^\\begin\{([pbvB]?matrix)\}(?P<rows>[^&]*)\\end\{\1\}$")


def column_entries(value: str) -> list[str] | None:
    """The entries of a column vector (one per row) where parts are wanted, else None."""
    match = _COLUMN_VECTOR.match(value.strip())
    if match is None:
        return None
    rows = [row.strip() for row in match.group("rows").split("\\\\")]
    return rows if len(rows) > 1 and all(rows) else None


def _without_notation(text: str) -> str:
    """`text` with a box that names an unknown the text goes on to work out written plainly:
    in "Let the number be \\boxed{n}. Then n = 12", the answer is 12, not n."""
    for start, end, contents in reversed(_box_spans(text)):
        if len(contents) == 1 and contents.isalpha() and re.search(rf"(?<![\\\w]){contents}\s*=\s*[^=]*\d", text[end:]):
            text = f"{text[:start]}{contents}{text[end:]}"
    return text


def _box_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, contents) of every complete \\boxed{…} / \\fbox{…}, in order; empty ones are skipped."""
    spans = []
    for match in _BOX.finditer(text):
        end = _closing_brace(text, match.end())
        if end is not None and text[match.end() : end].strip():
            spans.append((match.start(), end + 1, text[match.end() : end].strip()))
    return spans


# Between two boxes of one answer: "x = \boxed{1} 或 x = \boxed{6}", "\boxed{1} and \boxed{6}".
_BOX_JOINER = re.compile(r"(?:或者?|或是|以及|和|与|及|、|,|;|or|and)", re.IGNORECASE)
_BOX_SEPARATORS = re.compile(r"[\s$]|\\[()]")
_ASSIGNMENT_BEFORE_BOX = re.compile(r"(?:[A-Za-z](?:_\{?\w{1,3}\}?)?=)?$")


def _last_box(text: str, spans: list[tuple[int, int, str]]) -> str | None:
    """The final answer's box: the last of ``spans`` (the boxes of ``text``), with the boxes it is joined
    to by "or", "and", "或", "和" or a comma written as one answer. A box after other words corrects
    the earlier ones."""
    if not spans:
        return None
    chain = [spans[-1][2]]
    for (_, end, contents), (start, _, _) in zip(reversed(spans[:-1]), reversed(spans[1:])):
        gap = _BOX_SEPARATORS.sub("", text[end:start])
        gap = _ASSIGNMENT_BEFORE_BOX.sub("", gap, count=1)
        if not _BOX_JOINER.fullmatch(gap):
            break
        chain.insert(0, contents)
    return ", ".join(chain)


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

