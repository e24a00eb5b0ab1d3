"""The HTML trend report: one self-contained page from the run history.

The page is drawn by jinja2 from the view model of ``model.py`` (charts placed by
``charts.py``). Autoescaping is on for every template, so suite text and model output
containing ``<script>`` show as text. The page loads nothing: no scripts, fonts or styles from
anywhere, and a Content-Security-Policy that allows only its own inline script says so to the
browser.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pytest_mathperf.history import History, HistoryError, RunSummary, summarise
from pytest_mathperf.outputs.view import RunView, build_view
from pytest_mathperf.report.charts import (
    CHART_HEIGHT,
    CHART_WIDTH,
    MAX_POINTS,
    PLOT_BOTTOM,
    PLOT_LEFT,
    PLOT_RIGHT,
    PLOT_TOP,
)
from pytest_mathperf.report.model import Report, build_report

__all__ = ["MAX_POINTS", "PageFromHistory", "page_from_history", "render", "render_report", "write_page", "write_report"]

# -- rendering --------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    """Built once; autoescaping on for every template, whatever its name."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(report: Report) -> str:
    """The page for a report's data model."""
    plot = {
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": PLOT_LEFT, "right": PLOT_RIGHT,
        "top": PLOT_TOP, "bottom": PLOT_BOTTOM, "max_points": MAX_POINTS,
    }
    return _environment().get_template("report.html.j2").render(report=report, plot=plot)


def render_report(history: History, *, current: RunView | None = None) -> str:
    """The page for a history; ``current`` is this session's view (its run appended already, or not)."""
    summaries = history.summaries()
    if current is None:
        latest = _latest_view(history, summaries)
    else:
        latest = current
        if not current.uid or all(summary.uid != current.uid for summary in summaries):
            summaries.append(summarise(current.record))  # by its uid: another runner may have recorded since
    return render(build_report(summaries, latest, source=str(history.path), load_run=history.run))


def write_report(history: History | None, output: Path, *, current: RunView | None = None) -> None:
    """Write the page; with no history (``--mathperf-no-history``), or one that cannot be read, the current run alone."""
    if history is not None:
        try:
            page = render_report(history, current=current)
        except HistoryError as error:
            if current is None:
                raise
            page = render(build_report([summarise(current.record)], current, source="this run", notice=f"history not shown: {error}"))
    elif current is not None:
        page = render(build_report([summarise(current.record)], current, source="this run (no history)"))
    else:
        raise ValueError("write_report needs a history or a current run")
    write_page(output, page)


def _latest_view(history: History, summaries: Sequence[RunSummary]) -> RunView | None:
    """The view of the history's latest complete run, as recorded (no session, so no exit status)."""
    record = history.latest_run()
    if record is None:
        return None
    card = record.models[0].card if record.models else str(record.environment.get("card", ""))
    return build_view(record, card, uid=summaries[-1].uid if summaries else "")


@dataclass(frozen=True)
class PageFromHistory:
    """A page rendered from a history file, with what it covers (for the command's one line)."""

    page: str
    runs: int
    models: int


def page_from_history(location: Path | str) -> PageFromHistory:
    """The page for a history (a file or a postgresql:// URL); HistoryError, one line naming it, when it cannot be read."""
    with History(location) as history:
        if not history.exists():
            raise HistoryError(f"{history.path} does not exist (record runs with `pytest --mathperf` or pass --history PATH)")
        summaries = history.summaries()
        page = render(build_report(summaries, _latest_view(history, summaries), source=str(history.path), load_run=history.run))
    models = {model.model.model for summary in summaries for model in summary.models}
    return PageFromHistory(page=page, runs=len(summaries), models=len(models))


def holds_something_else(output: Path) -> bool:
    """Whether ``output`` is a file that is not an HTML page (a thresholds file, a suite, a history): never replaced by a report."""
    if not output.is_file():
        return False
    try:
        with output.open("rb") as file:
            start = file.read(512).lstrip().lower()
    except OSError:
        return False  # the write will say what is wrong
    return not (start.startswith(b"<!doctype html") or start.startswith(b"<html")) and output.stat().st_size > 0


def write_page(output: Path, page: str) -> None:
    """Write through a temporary file, so a reader never sees half a page."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
