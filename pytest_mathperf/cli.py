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

    args = parser.parse_args(argv)
    if args.command == "report":
        return _report(args.history, args.output)
    if args.command == "card":
        from pytest_mathperf.devices import detect_card

        print(detect_card())
        return 0
    if args.command == "lint":
        from pytest_mathperf.lint import lint

        return lint(args.paths or [Path("suites")], args.thresholds)
    parser.error(f"unknown command {args.command}")
    return 2


def _report(history: Path, output: Path) -> int:
    """``mathperf report``: one line on success or on error, and the exit code."""
    from pytest_mathperf.history import HistoryError
    from pytest_mathperf.report.html import page_from_history, write_page

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
