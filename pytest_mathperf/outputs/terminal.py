"""The terminal surface: the mathperf section of pytest's terminal summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_mathperf.outputs.view import RunView


class TerminalSurface:
    """Renders the view when published; writes it when pytest writes its summary, with the session's messages.

    Registered as a plugin for its ``pytest_terminal_summary``, so the section stays where pytest
    puts plugin summaries, after the failures.
    """

    name = "terminal"
    order = 90

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages  # the session's lines ("recorded run 3"), filled until the summary is written
        self.lines: list[str] = []

    def publish(self, view: RunView) -> Sequence[str]:
        from pytest_mathperf.summary import summary_lines

        self.lines = summary_lines(view)
        return []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines and not self.messages:  # a run that measured nothing still says what it decided
            return
        terminalreporter.section("mathperf")
        for line in self.lines + self.messages:
            terminalreporter.write_line(line)
