"""Where reasoning ends and the answer begins, defined once for both backends.

Reasoning models write their scratchpad inside ``<think>…</think>``; what a user waits for is the
first answer token after it, so ``ttfat_ms`` in-process and over HTTP both use :func:`answer_offset`.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def answer_offset(text: str, opened_in_prompt: bool = False) -> int | None:
    """Index of the answer's first non-blank character in ``text``: after the last ``</think>``, or
    at once when there is no reasoning; None when the text ends inside the reasoning or is blank.

    ``opened_in_prompt``: the chat template already opened ``<think>``, so text without a
    ``</think>`` is all reasoning. One definition for both backends' ``ttfat_ms``.
    """
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        start = close + len(THINK_CLOSE)
    elif opened_in_prompt or text.lstrip().startswith(THINK_OPEN):
        return None  # still inside <think> when the output ended
    else:
        start = 0
    while start < len(text) and text[start].isspace():
        start += 1
    return start if start < len(text) else None
