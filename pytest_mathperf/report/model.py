"""The report's view model: what the page shows, built in plain Python from the run history.

Charts with their points already placed (``charts.py``), change markers (``runs.py``), the
fleet matrix (``fleet.py``) and the latest run's tables (``latest.py``) are computed here and
handed to jinja2 (``html.py``), which only draws them.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytest_mathperf.history import RunSummary
from pytest_mathperf.outputs.view import RunView
from pytest_mathperf.report.fleet import CardComparison, Fleet, card_comparisons, fleet
from pytest_mathperf.report.formatting import when
from pytest_mathperf.report.latest import FlipGroup, LatestRun, case_flips, latest_run
from pytest_mathperf.report.runs import is_blessed, run_name
from pytest_mathperf.report.trends import Panel, RunDetails, Trend, panel, trends
from pytest_mathperf.results import RunRecord

_SCRIPT = """document.documentElement.dataset.script = "ran";
const only = document.getElementById("only-failing");
if (only) {
  only.hidden = false;
  only.querySelector("input").addEventListener("change", (event) => {
    document.body.classList.toggle("only-failing", event.target.checked);
  });
}"""


@dataclass(frozen=True)
class Report:
    """Everything the template shows."""

    generated: str
    source: str
    notice: str  # a problem the reader must know about ("" when none)
    run_count: int
    model_count: int
    cards: tuple[str, ...]
    fleet: Fleet
    comparisons: tuple[CardComparison, ...]
    panels: tuple[Panel, ...]
    flips: tuple[FlipGroup, ...]
    latest: LatestRun | None
    has_blessed: bool  # the legend promises the blessed marker only where one is drawn
    script: str
    script_hash: str


def build_report(
    summaries: Sequence[RunSummary],
    latest: RunView | None,
    *,
    source: str,
    notice: str = "",
    load_run: Callable[[int], RunRecord] | None = None,
) -> Report:
    """The report's data model from run summaries (oldest first) and the latest run's view.

    ``load_run`` reads one run in full by id; without it, points have no interval from their
    samples (except the latest run's) and only the latest run's cases are compared.
    """
    details = RunDetails(load_run, latest.record if latest is not None else None)
    found = trends(summaries)
    models = {model.model.model for summary in summaries for model in summary.models}
    cards = sorted({model.model.card for summary in summaries for model in summary.models})
    # found by its uid, never by its timestamps: on a shared history another runner records in between
    latest_summary = next((summary for summary in summaries if latest is not None and latest.uid and summary.uid == latest.uid), None)
    latest_label = run_name(latest_summary).full if latest_summary is not None else "this run"
    return Report(
        generated=when(time.time()),
        source=source,
        notice=notice,
        run_count=len(summaries),
        model_count=len(models),
        cards=tuple(cards),
        fleet=fleet(found),
        comparisons=card_comparisons(found, details),
        panels=tuple(panel(trend, details) for trend in found),
        flips=_flips(found, details),
        latest=latest_run(latest, latest_label) if latest is not None else None,
        has_blessed=any(is_blessed(summary) for summary in summaries),
        script=_SCRIPT,
        script_hash="sha256-" + base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode(),
    )


def _flips(found: Sequence[Trend], details: RunDetails) -> tuple[FlipGroup, ...]:
    """Per model × card, the cases whose verdict changed between its last two runs."""
    groups = []
    for trend in found:
        if len(trend.runs) < 2:
            continue
        before, after = details.record(trend.runs[-2][0]), details.record(trend.runs[-1][0])
        if before is None or after is None:
            continue
        groups.append(
            case_flips(trend.anchor, trend.model, trend.card, (trend.names[-2].full, before), (trend.names[-1].full, after))
        )
    return tuple(groups)
