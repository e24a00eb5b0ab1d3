"""The HTML report surface: the trend report with this run's view as its header and latest run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_mathperf.outputs import OutputNotWritten
from pytest_mathperf.outputs.view import RunView

if TYPE_CHECKING:
    from pytest_mathperf.history import HistoryLocation


class HtmlReportSurface:
    """Writes ``--mathperf-html``: the history's trends (when there is one) and this run's verdicts."""

    name = "html"
    order = 10

    def __init__(self, path: Path | None, history: HistoryLocation | None) -> None:
        self.path = path
        self.history = history

    def publish(self, view: RunView) -> Sequence[str]:
        if self.path is None:
            return []
        from pytest_mathperf.history import History
        from pytest_mathperf.report.html import write_report

        history = None
        try:
            history = History(self.history) if self.history is not None else None
            write_report(history, self.path, current=view)
            return [f"mathperf: wrote {self.path}"]
        except Exception as error:  # a report problem must not hide the gate's verdict, but fails the run
            raise OutputNotWritten(f"mathperf: report NOT written: {type(error).__name__}: {error}") from error
        finally:
            if history is not None:
                history.close()
