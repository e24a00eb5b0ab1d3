"""Hedged or disowned answers: a value the output itself doubts, leaves open or withdraws earns
no credit ("17 辆。不过我不确定这是否正确", "\\boxed{64}, but this is probably wrong").

Only the answer's own sentence (for "暂定答案为", "Tentatively, the answer is", "my best guess")
and the text from the answer on are read: doubt voiced before the answer ("题目说人数不确定",
"At first I was not sure … Therefore 11") was resolved by it. A hedge is cancelled by a check
that confirms in a later clause ("… 还需检验。检验：17 × 3 + 2 = 53，正确").
"""

from __future__ import annotations

import re

# Before the value, in the answer's own sentence: the answer is offered as provisional.
_PROVISIONAL = re.compile(
    r"暂定|初步|猜测|我猜|估计大概|\btentative(?:ly)?\b|\b(?:my\s+)?(?:best\s+|rough\s+)?guess\b|\bI\s+guess\b",
    re.IGNORECASE,
)
_DOUBT_ZH = (
    r"(?:我|笔者|本人)[^。！？\n]{0,8}?(?:不(?:太|是很|能)?确定|没(?:有)?把握|不敢(?:肯定|确定)|拿不准)"
    r"|(?:这个|这一?|此|该|上述|以上的?|我的)(?:结果|答案|结论|值|解)\s*(?:也|应该|可能|恐怕|大概|显然)?\s*是?\s*(?:错的|错误的?|不对|有误|不正确)"
    r"|可能(?:有误|是?错(?:的|了)|不对|不正确|还?不够)|恐怕(?:有误|不对)"
    r"|(?:(?:还|仍|尚)(?:需|需要)|有待|需要进一步)(?:进一步)?(?:检验|验证|核实|确认)"
    r"|(?:还|仍|尚)(?:没有|无|未有)(?:定论|结论)|没有定论|无法(?:确定|判断)(?:答案|结果)?"
    r"|也(?:有)?可能是"
)
_DOUBT_EN = (
    r"\b(?:I'?m|I\s+am)\s+(?:not|un)\s*(?:(?:entirely|completely|quite|fully|100\s*%)\s+)?(?:sure|certain|confident)\b"
    r"|\bnot\s+(?:entirely|completely|quite|fully|100\s*%)\s+(?:sure|certain)\b|\b(?:I'?m|I\s+am)\s+(?:still\s+)?unsure\b"
    r"|\bI\s+(?:might|may|could)\s+be\s+wrong\b"
    r"|\b(?:this|that|it|the\s+(?:answer|result)|my\s+answer|this\s+(?:answer|result))\s+"
    r"(?:is|'s|seems|might\s+be|may\s+be|could\s+be)\s+(?:probably\s+|likely\s+|most\s+likely\s+)?"
    r"(?:wrong|incorrect|not\s+(?:right|correct))\b"
    r"|\bprobably\s+(?:wrong|incorrect|not\s+(?:right|correct))\b"
    r"|\b(?:I|we|still)\s+(?:still\s+)?(?:need|have)\s+to\s+(?:verify|check|double-check|confirm)\b"
    r"|\b(?:it|this|that|(?:this|that|the|my)\s+(?:answer|result))\s+(?:still\s+)?needs?\s+(?:further\s+)?(?:verification|checking|to\s+be\s+(?:verified|checked|confirmed))\b"
    r"|\bor\s+(?:possibly|maybe|perhaps)\b|\bmight\s+also\s+be\b|\binconclusive\b|\bcannot\s+(?:give|determine|be\s+sure)\b|\bno\s+(?:final\s+)?conclusion\b"
)
_DOUBT = re.compile(f"{_DOUBT_ZH}|{_DOUBT_EN}", re.IGNORECASE)
# A later clause that confirms the answer settles the doubt.
_CLAUSE_BREAK = re.compile(r"[。.!?！？\n]|但是?|不过|然而|\bbut\b|\bhowever\b", re.IGNORECASE)
_CONFIRMED = re.compile(
    r"正确|无误|没错|是对的|符合|成立|确认|没问题|一致|✓|✔|\bchecks?\s+out\b|\bconfirm(?:ed|s)\b|\bverified\b"
    r"|\bis\s+(?:correct|right|consistent)\b|\bholds\b|\bit'?s\s+(?:fine|right|correct)\b",
    re.IGNORECASE,
)
_SENTENCE_START = re.compile(r"[。.!?！？\n;；]")


def hedge_in(text: str, answer_start: int, answer_end: int) -> str | None:
    """The words by which `text` doubts or withdraws the answer at [answer_start, answer_end), or None."""
    sentence_start = max((match.end() for match in _SENTENCE_START.finditer(text, 0, answer_start)), default=0)
    lead = _PROVISIONAL.search(text, sentence_start, answer_end)
    if lead is not None and not _confirmed_after(text, lead.end()):
        return lead.group()
    for doubt in _DOUBT.finditer(text, answer_start):
        if not _confirmed_after(text, doubt.end()):
            return doubt.group()
    return None


def _confirmed_after(text: str, start: int) -> bool:
    """Whether a clause after the one holding `start` confirms the answer."""
    clause_break = _CLAUSE_BREAK.search(text, start)
    return clause_break is not None and _CONFIRMED.search(text, clause_break.end()) is not None
