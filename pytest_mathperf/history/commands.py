"""``mathperf history check`` and ``mathperf history import``: what they print and their exit codes.

Exit codes: 0 all is well; 1 problems were found (check) or some runs could not be read
(import); 2 the history or the source cannot be used at all.
"""

from __future__ import annotations

import sys

from pytest_mathperf.history.database import HistoryError, parse_location
from pytest_mathperf.history.schema import SCHEMA_VERSION
from pytest_mathperf.history.store import History
from pytest_mathperf.history.transfer import import_history


def check_command(location: str) -> int:
    try:
        report = History(parse_location(location)).check()
    except HistoryError as error:
        print(f"mathperf history check: {error}", file=sys.stderr)
        return 2
    version = report.schema_version
    upgrade = f" (upgraded to {SCHEMA_VERSION} on the next write)" if version is not None and version < SCHEMA_VERSION else ""
    print(f"{report.location}: schema {version}{upgrade}, {report.runs} runs")
    if report.incomplete_runs:
        ids = ", ".join(str(run_id) for run_id in report.incomplete_runs)
        print(f"incomplete (killed mid-way, or being recorded now): runs {ids}")
    for problem in report.problems:
        print(f"problem: {problem}")
    print("ok" if report.ok else f"{len(report.problems)} problems; see the README on salvaging a damaged history")
    return 0 if report.ok else 1


def import_command(source: str, target: str) -> int:
    try:
        target_location = parse_location(target)
        source_location = parse_location(source)
        if str(source_location) == str(target_location) or (
            source_location.path is not None
            and target_location.path is not None
            and target_location.path.exists()
            and source_location.path.resolve() == target_location.path.resolve()
        ):
            raise HistoryError(f"{source}: the source and the target are the same history")
        with History(target_location) as history:
            result = import_history(source, history)
    except HistoryError as error:
        print(f"mathperf history import: {error}", file=sys.stderr)
        return 2
    print(
        f"{source} → {target_location}: {len(result.added)} runs added, {len(result.replaced)} incomplete runs "
        f"completed, {len(result.present)} already there"
    )
    for line in result.unreadable:
        print(f"not imported: {line}")
    return 1 if result.unreadable else 0
