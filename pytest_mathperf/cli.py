"""The ``mathperf`` console command: what is not a test run (report, card, lint)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_HISTORY = Path(".mathperf/history.db")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathperf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="render the HTML trend report from the run history")
    report.add_argument("--history", type=Path, default=DEFAULT_HISTORY, help="history file (default: %(default)s)")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="HTML file to write")

    commands.add_parser("card", help="print this machine's card name as thresholds.yaml should spell it")

    lint = commands.add_parser("lint", help="check suites and thresholds without loading a model")
    lint.add_argument("paths", nargs="*", type=Path, help="suite files or folders (default: suites)")
    lint.add_argument("--thresholds", type=Path, default=Path("thresholds.yaml"), help="budgets file")

    init = commands.add_parser("init", help="start a project: suites, thresholds.yaml, pytest options, a CI gate workflow")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="project folder (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite existing suites, thresholds.yaml and workflow")

    args = parser.parse_args(argv)
    if args.command == "report":
        from pytest_mathperf.report.html import write_report_from_history

        return write_report_from_history(args.history, args.output)
    if args.command == "card":
        from pytest_mathperf.devices import detect_card

        print(detect_card())
        return 0
    if args.command == "lint":
        from pytest_mathperf.lint import lint

        return lint(args.paths or [Path("suites")], args.thresholds)
    if args.command == "init":
        from pytest_mathperf.scaffold import run_init

        return run_init(args.directory, args.force)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
