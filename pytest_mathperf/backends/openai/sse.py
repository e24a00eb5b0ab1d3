"""Server-sent events, sans IO: bytes in, events out, then one chat completion read from them.

:class:`EventDecoder` frames the byte stream as the SSE format defines it (an event ends at a blank
line; its ``data:`` lines are joined with newlines; comments and other fields are skipped; CR, LF
and CRLF all end a line), so an event whose JSON spans several ``data:`` lines is read whole.
:class:`ChatStream` turns the events of one streamed chat completion into text, timings and the
server's usage. Neither touches a socket: the gate, load profiles, tests and benchmarks share them.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NamedTuple

from pytest_mathperf.backends.openai.transport import one_line
from pytest_mathperf.backends.thinking import THINK_CLOSE, THINK_OPEN, answer_offset


class EventDecoder:
    """Splits a byte stream into the ``data`` of each server-sent event."""

    __slots__ = ("_pending", "_data", "_trailing_cr", "carried_data")

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line
        self._data: list[bytes] = []  # data lines of the event being read
        self._trailing_cr = False  # a CR ended the last piece: a LF starting the next one is its pair
        self.carried_data = False  # the last piece held event data, not only keep-alive comments

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of every event that ``piece`` completes (empty events are skipped)."""
        if self._trailing_cr:
            self._trailing_cr = False
            if piece.startswith(b"\n"):
                piece = piece[1:]
        if b"\r" in piece:
            self._trailing_cr = piece.endswith(b"\r")
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._pending + piece).split(b"\n") if self._pending else piece.split(b"\n")
        self._pending = lines.pop()
        events: list[bytes] = []
        data = self._data
        self.carried_data = False
        for line in lines:
            if not line:
                if data:
                    joined = data[0] if len(data) == 1 else b"\n".join(data)
                    if joined:  # an event whose data is empty is not dispatched
                        events.append(joined)
                    data.clear()
            elif line.startswith(b"data:"):
                self.carried_data = True
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            # ":" comments (keep-alives), "event:", "id:" and "retry:" carry nothing we read
        if self._pending.startswith(b"data:"):
            self.carried_data = True  # an event still arriving
        return events


class StreamEvent(NamedTuple):
    """One delta that carried text, with the time it reached us (a tuple: one is made per token)."""

    at: float  # perf_counter seconds
    kind: Literal["content", "reasoning"]
    text: str


_decode_json = json.JSONDecoder().decode


class ChatStream:
    """One streamed chat completion, fed event by event; knows its text, timings and usage.

    Reasoning arrives either as ``reasoning_content``/``reasoning`` deltas (vLLM, SGLang with a
    reasoning parser, transformers serve) or inline as ``<think>…</think>`` in ``content``.
    """

    __slots__ = ("events", "data_events", "finish_reason", "usage", "done", "server_error", "first_event_at",
                 "completed_at", "served_model")  # fmt: skip

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.data_events = 0  # every event, including role-only and usage-only ones
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False  # `data: [DONE]` seen
        self.server_error: str | None = None
        self.first_event_at: float | None = None
        self.completed_at: float | None = None  # [DONE], or the end of the body
        self.served_model: str | None = None  # the model id the chunks name: which model really answered

    @property
    def finished(self) -> bool:
        """The server said the generation is over (a finish_reason or [DONE]); EOF before this is a cut."""
        return self.done or self.finish_reason is not None

    def feed(self, data: bytes | str, now: float) -> bool:
        """Consume one event's data; True once the stream is complete or failed."""
        if self.first_event_at is None:
            self.first_event_at = now
        self.data_events += 1
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if text == "[DONE]":
            self.done = True
            self.completed_at = now
            return True
        try:
            chunk = _decode_json(text)
        except ValueError:
            self.server_error = f"unparseable event: {one_line(_text(data), 120)}"
            return True
        if not isinstance(chunk, dict):
            self.server_error = f"unexpected event: {one_line(_text(data), 120)}"
            return True
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk)
            if isinstance(error, dict):
                error = error.get("message") or error.get("detail") or json.dumps(error)
            self.server_error = one_line(str(error))
            return True
        model = chunk.get("model")
        if self.served_model is None and isinstance(model, str) and model:
            self.served_model = model
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self.usage = usage
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a malformed choice is not ours to read, and must not abort a load run
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    self.events.append(StreamEvent(now, "reasoning", reasoning))
                content = delta.get("content")
                if isinstance(content, str) and content:
                    self.events.append(StreamEvent(now, "content", content))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return False

    @property
    def reasoning_apart(self) -> bool:
        """Whether the server streamed the reasoning apart from the content (a reasoning parser)."""
        return any(event.kind == "reasoning" for event in self.events)

    def reasoning_text(self) -> str:
        if self.reasoning_apart:
            return self._joined("reasoning")
        content = self._joined()
        close = content.rfind(THINK_CLOSE)
        if close >= 0:
            return content[:close].replace(THINK_OPEN, "", 1)
        if content.lstrip().startswith(THINK_OPEN):
            return content.lstrip()[len(THINK_OPEN) :]
        return ""

    def text(self) -> str:
        """The whole output, with separately streamed reasoning wrapped in ``<think>…</think>``.

        Answers are extracted after ``</think>``, so reasoning streamed apart from the content must
        not be mistaken for the answer, nor dropped from the raw output.
        """
        if not self.reasoning_apart:
            return self._joined()
        reasoning = self.reasoning_text()
        content = self._joined("content")
        closed = THINK_CLOSE if (content or self.finish_reason != "length") else ""
        return f"{THINK_OPEN}{reasoning}{closed}{content}"

    def _joined(self, kind: str | None = None) -> str:
        """The text of the events of ``kind`` (all of them by default), as one mended string."""
        return _mended("".join(event.text for event in self.events if kind is None or event.kind == kind))

    def ttft_at(self) -> float | None:
        return self.events[0].at if self.events else None

    def answer_started_at(self) -> float | None:
        """When the first non-blank character of the answer (after the reasoning) arrived; None if never."""
        if self.reasoning_apart:
            for event in self.events:
                if event.kind == "content" and event.text.strip():
                    return event.at
            return None
        content = "".join(event.text for event in self.events)
        start = answer_offset(content)
        if start is None:
            return None
        offset = 0
        for event in self.events:
            offset += len(event.text)
            if offset > start:
                return event.at
        return None


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _mended(text: str) -> str:
    """``text`` with UTF-16 surrogate halves rejoined and any left alone replaced (U+FFFD).

    A server that counts in UTF-16 may split a character such as an emoji across two chunks, each
    escaped as a lone surrogate; left in, it is not UTF-8 and nothing can write it down.
    """
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
