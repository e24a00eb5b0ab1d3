"""The session's side of the outputs: its view, and the built-in surfaces it publishes to."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mathperf.outputs.view import RunView, build_view

if TYPE_CHECKING:
    from pytest_mathperf.results import RunRecord
    from pytest_mathperf.state import GateState


def builtin_surfaces(state: GateState) -> list[Any]:
    """The HTML report, the Markdown summary, the terminal section."""
    from pytest_mathperf.outputs.html import HtmlReportSurface
    from pytest_mathperf.outputs.markdown import MarkdownSurface
    from pytest_mathperf.outputs.terminal import TerminalSurface

    settings = state.settings
    return [
        HtmlReportSurface(settings.html, settings.history),
        MarkdownSurface(settings.markdown, os.environ.get("GITHUB_STEP_SUMMARY"), settings.html),
        TerminalSurface(state.messages),
    ]


def session_view(state: GateState, run: RunRecord, session: pytest.Session, uid: str) -> RunView:
    """The run's verdicts, once, with the exit status the session ends with and what else made it fail."""
    from pytest_mathperf.history.recording import EXIT_RUN_NOT_RECORDED
    from pytest_mathperf.summary import budget_plan_lines

    failures = list(state.gate_failures)
    if state.collection_errors:
        failures.append(f"{state.collection_errors} collection error{'s' if state.collection_errors != 1 else ''}")
    other_tests = session.testsfailed - sum(1 for outcome in state.outcomes.values() if outcome == "failed")
    if other_tests > 0:
        failures.append(f"{other_tests} other test{'s' if other_tests != 1 else ''} failed")
    if session.exitstatus == EXIT_RUN_NOT_RECORDED:
        failures.append("the run was not recorded in the history")
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        failures.append("the session was interrupted")
    return build_view(
        run,
        state.runner.card,
        exit_status=int(session.exitstatus),
        outcomes=state.outcomes,
        plan_lines=budget_plan_lines(state.plan, state.runner.card),
        failures=failures,
        uid=uid,
    )
