"""The Markdown surface: the gate's verdict to ``--mathperf-markdown`` and GitHub's step summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_mathperf.outputs import OutputNotWritten
from pytest_mathperf.outputs.view import RunView


class MarkdownSurface:
    """Writes the Markdown summary to its file and appends it to ``$GITHUB_STEP_SUMMARY`` when that is set."""

    name = "markdown"
    order = 20

    def __init__(self, path: Path | None, step_summary: str | None, html_report: Path | None) -> None:
        self.path = path
        self.step_summary = step_summary
        self.html_report = html_report

    def publish(self, view: RunView) -> Sequence[str]:
        if self.path is None and not self.step_summary:
            return []
        from pytest_mathperf.markdown import markdown_summary

        report = None
        if self.html_report is not None:  # in a GitHub job the report is an artifact; elsewhere, name its path
            report = self.html_report.name if self.step_summary else str(self.html_report)
        text = markdown_summary(view, html_report=report, html_in_artifacts=bool(self.step_summary))
        targets = [(self.path, "w")] if self.path is not None else []
        targets += [(Path(self.step_summary), "a")] if self.step_summary else []
        lines, missing = [], []
        for path, mode in targets:
            try:
                with path.open(mode, encoding="utf-8") as file:
                    file.write(text)
                lines.append(f"mathperf: wrote the Markdown summary to {path}")
            except OSError as error:  # a summary problem must not hide the gate's verdict
                line = f"mathperf: Markdown summary NOT written to {path}: {error.strerror or error}"
                # --mathperf-markdown was asked for and fails the run; the step summary is the CI's, and only said
                (missing if path == self.path else lines).append(line)
        if missing:
            raise OutputNotWritten("\n".join(lines + missing))
        return lines
