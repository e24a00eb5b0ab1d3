"""The ``mathperf`` console command: what is not a test run (report, card, lint)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_HISTORY = Path(".mathperf/history.db")
HISTORY_HELP = (
    "history file, or postgresql://user@host/database (password from PGPASSWORD or ~/.pgpass); default: %(default)s"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="render the HTML trend report from the run history")
    report.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="HTML file to write")

    commands.add_parser("card", help="print this machine's card name as thresholds.yaml should spell it")

    lint = commands.add_parser("lint", help="check suites and thresholds without loading a model")
    lint.add_argument("paths", nargs="*", type=Path, help="suite files or folders (default: suites)")
    lint.add_argument("--thresholds", type=Path, default=Path("thresholds.yaml"), help="budgets file")

    history = commands.add_parser("history", help="check the run history, or import runs into it")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    check = history_commands.add_parser("check", help="integrity, schema version and runs; exit 1 on problems")
    check.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    imports = history_commands.add_parser("import", help="add the runs of another history or of a side file, once")
    imports.add_argument("source", help="an SQLite history, a postgresql:// URL, or a run file the gate saved")
    imports.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)

    bless = commands.add_parser("bless", help="mark a recorded run as the baseline for its card and models")
    bless.add_argument("run", type=int, help="the run's number (as `pytest --mathperf` and the report print it)")
    bless.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)

    init = commands.add_parser("init", help="start a project: suites, thresholds.yaml, pytest options, a CI gate workflow")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="project folder (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite existing suites, thresholds.yaml and workflow")

    args = parser.parse_args(argv)
    if args.command == "history":
        from pytest_mathperf.history.commands import check_command, import_command

        if args.history_command == "check":
            return check_command(args.history)
        return import_command(args.source, args.history)
    if args.command == "report":
        return _report(args.history, args.output)
    if args.command == "card":
        from pytest_mathperf.devices import describe_first_card

        info = describe_first_card()
        print(info.card)  # exactly as a thresholds.yaml key must spell it
        if info.nvml_problem:
            print(f"mathperf card: NVML not used ({info.nvml_problem}); the name is CUDA's", file=sys.stderr)
        return 0
    if args.command == "lint":
        from pytest_mathperf.lint import lint

        return lint(args.paths or [Path("suites")], args.thresholds)
    if args.command == "bless":
        return _bless(args.history, args.run)
    if args.command == "init":
        from pytest_mathperf.scaffold import run_init

        return run_init(args.directory, args.force)
    parser.error(f"unknown command {args.command}")
    return 2


def _bless(history: str, run_id: int) -> int:
    """``mathperf bless RUN``: that run becomes the baseline of ``--mathperf-baseline blessed``."""
    from pytest_mathperf.history import History, HistoryError

    try:
        with History(history) as store:
            record = store.bless(run_id)
    except HistoryError as error:
        print(f"mathperf bless: {error}", file=sys.stderr)
        return 1
    models = ", ".join(f"{model.model} on {model.card!r}" for model in record.models)
    print(f"run {run_id} is now the blessed baseline for {models}")
    return 0


def _report(history: str, output: Path) -> int:
    """``mathperf report``: one line on success or on error, and the exit code."""
    from pytest_mathperf.history import HistoryError, parse_location
    from pytest_mathperf.report.html import page_from_history, write_page

    try:
        parse_location(history)
    except HistoryError as error:
        print(f"mathperf report: --history: {error}", file=sys.stderr)
        return 2
    try:
        rendered = page_from_history(history)
    except HistoryError as error:
        print(f"mathperf report: {error}", file=sys.stderr)
        return 1
    try:
        write_page(output, rendered.page)
    except OSError as error:
        print(f"mathperf report: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"wrote {output} ({rendered.runs} runs, {rendered.models} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
