"""``mathperf history check|list|hide|unhide|import``: what they print and their exit codes.

Exit codes: 0 all is well; 1 problems were found (check) or some runs could not be read
(import); 2 the history or the source cannot be used at all (or has no such run).
"""

from __future__ import annotations

import argparse
import sys
import time

from pytest_mathperf.history.database import HistoryError, parse_location
from pytest_mathperf.history.schema import SCHEMA_VERSION
from pytest_mathperf.history.store import History
from pytest_mathperf.history.transfer import import_history


def run(args: argparse.Namespace) -> int:
    """Dispatch ``mathperf history SUBCOMMAND``."""
    if args.history_command == "check":
        return check_command(args.history)
    if args.history_command == "list":
        return list_command(args.history)
    if args.history_command == "hide":
        return hide_command(args.history, args.run, args.reason)
    if args.history_command == "unhide":
        return unhide_command(args.history, args.run)
    return import_command(args.source, args.history)


def list_command(location: str) -> int:
    try:
        with History(parse_location(location)) as history:
            summaries = history.summaries(include_incomplete=True)  # every run, hidden ones too
            hidden = {run_id: reason for run_id, _, reason in history.hidden_runs()}
            blessed = set(history.blessed_run_ids())
    except HistoryError as error:
        print(f"mathperf history list: {error}", file=sys.stderr)
        return 2
    for summary in summaries:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.started_at))
        models = ", ".join(dict.fromkeys(f"{m.model.model} on {m.model.card}" for m in summary.models)) or "no model"
        notes = [str(summary.environment.get("label") or "")]
        notes += ["incomplete"] if not summary.complete else []
        notes += ["blessed"] if summary.run_id in blessed else []
        notes += [f"hidden: {hidden[summary.run_id]}"] if summary.run_id in hidden else []
        print(f"run {summary.run_id}: {started} · {models}" + "".join(f" · {note}" for note in notes if note))
    return 0


def hide_command(location: str, run_id: int, reason: str) -> int:
    try:
        with History(parse_location(location)) as history:
            history.hide(run_id, reason)
    except HistoryError as error:
        print(f"mathperf history hide: {error}", file=sys.stderr)
        return 2
    print(f"run {run_id} is hidden from the trends, the latest run, calibration and baselines ({reason.strip()}); "
          f"`mathperf history unhide {run_id}` shows it again")
    return 0


def unhide_command(location: str, run_id: int) -> int:
    try:
        with History(parse_location(location)) as history:
            reason = history.unhide(run_id)
    except HistoryError as error:
        print(f"mathperf history unhide: {error}", file=sys.stderr)
        return 2
    print(f"run {run_id} is shown again (it was hidden: {reason})" if reason else f"run {run_id} was not hidden")
    return 0


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
    for run_id, hidden_at, reason in report.hidden_runs:
        print(f"hidden from the trends: run {run_id}, {time.strftime('%Y-%m-%d %H:%M', time.localtime(hidden_at))}: {reason}")
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
