"""The ``mathperf`` console command: what is not a test run (report, card, lint)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_mathperf.results import RunRecord

DEFAULT_HISTORY = Path(".mathperf/history.db")
DESCRIPTION = "pytest-mathperf's console command: what is not a test run (the gate itself is pytest --mathperf)."
HISTORY_HELP = (
    "history file, or postgresql://user@host/database (password from PGPASSWORD or ~/.pgpass); default: %(default)s"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mathperf", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="render the HTML trend report from the run history")
    report.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="HTML file to write")

    commands.add_parser("card", help="print this machine's card name as thresholds.yaml should spell it")

    lint = commands.add_parser("lint", help="check suites and thresholds without loading a model")
    lint.add_argument("paths", nargs="*", type=Path, help="suite files or folders (default: suites)")
    lint.add_argument("--thresholds", type=Path, help="budgets file (default: thresholds.yaml, when there is one)")

    history = commands.add_parser("history", help="check, list, hide or import the recorded runs")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    check = history_commands.add_parser("check", help="integrity, schema version and runs; exit 1 on problems")
    check.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    imports = history_commands.add_parser("import", help="add the runs of another history or of a side file, once")
    imports.add_argument("source", help="an SQLite history, a postgresql:// URL, or a run file the gate saved")
    imports.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    listing = history_commands.add_parser("list", help="every recorded run: when, models, label, and whether it is shown")
    listing.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    hide = history_commands.add_parser("hide", help="take a run out of the trends, latest run, calibration and baselines")
    hide.add_argument("run", type=int, help="the run's number (as `mathperf history list` prints it)")
    hide.add_argument("--reason", required=True, help="why, kept with the run and shown by `history list` and `check`")
    hide.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)
    unhide = history_commands.add_parser("unhide", help="show a hidden run again")
    unhide.add_argument("run", type=int, help="the run's number")
    unhide.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)

    bless = commands.add_parser("bless", help="mark recorded runs as the baseline for their card and models")
    bless.add_argument(
        "run", type=int, nargs="+",
        help="the runs' numbers (as `pytest --mathperf` and the report print them); timings need three, to know how much runs differ",
    )
    bless.add_argument("--history", default=str(DEFAULT_HISTORY), help=HISTORY_HELP)

    init = commands.add_parser("init", help="start a project: suites, thresholds.yaml, pytest options, a CI gate workflow")
    init.add_argument("directory", nargs="?", type=Path, default=Path("."), help="project folder (default: here)")
    init.add_argument("--force", action="store_true", help="overwrite existing suites, thresholds.yaml and workflow")
    init.add_argument(
        "--shards", type=_shard_count, metavar="N",
        help="write a matrix workflow instead: N shards on runners of one card, then one judge over the fleet history",
    )

    judge = commands.add_parser(
        "judge", help="judge a sharded gate: every budget and comparison over all shards of a run group"
    )
    judge.add_argument("--run-group", required=True, help="the group the shards ran under (--mathperf-run-group)")
    judge.add_argument("--history", required=True, help="the history the shards recorded into: " + HISTORY_HELP.split(";")[0])
    judge.add_argument(
        "pytest_args", nargs=argparse.REMAINDER,
        help="pytest options for the verdict, after `--`: --junitxml FILE, --mathperf-markdown FILE, --mathperf-html FILE, ...",
    )

    _add_calibrate(commands)
    from pytest_mathperf.plan import add_plan_parser

    add_plan_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "calibrate":
        return _calibrate(args)
    if args.command == "plan":
        from pytest_mathperf.plan import plan_command

        return plan_command(args)
    if args.command == "judge":
        from pytest_mathperf.groupjudge import judge_command

        pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
        return judge_command(args.run_group, args.history, pytest_args)
    if args.command == "history":
        from pytest_mathperf.history import commands as history_commands

        return history_commands.run(args)
    if args.command == "report":
        return _report(args.history, args.output)
    if args.command == "card":
        return _card()
    if args.command == "lint":
        from pytest_mathperf.lint import lint

        return lint(
            args.paths or [Path("suites")], args.thresholds or Path("thresholds.yaml"),
            explicit=args.thresholds is not None, project_suites=Path("suites"),
        )
    if args.command == "bless":
        return _bless(args.history, args.run)
    if args.command == "init":
        from pytest_mathperf.scaffold import run_init

        return run_init(args.directory, args.force, args.shards)
    parser.error(f"unknown command {args.command}")
    return 2


def _card() -> int:
    """``mathperf card``: the card name thresholds.yaml must use here (stdout), what to know about it (stderr)."""
    from pytest_mathperf.devices import describe_host_card
    from pytest_mathperf.nvml_cards import every_card
    from pytest_mathperf.poller import nvml_errors

    info = describe_host_card()
    print(info.card)  # exactly as a thresholds.yaml key must spell it
    if info.device.startswith("cuda") and info.nvml_problem:
        print(f"mathperf card: NVML not used ({info.nvml_problem}); the name is CUDA's", file=sys.stderr)
        return 0
    if info.nvml_problem:
        print(f"mathperf card: {info.nvml_problem}", file=sys.stderr)
    if info.card == "cpu":
        return 0
    if info.device == "cpu":
        print("mathperf card: torch cannot use CUDA here, so an in-process model runs on `cpu`; "
              "this card judges served models (--mathperf-backend openai)", file=sys.stderr)
    try:
        cards = every_card()
    except nvml_errors():
        return 0
    if len(cards) > 1:
        listed = ", ".join(f"{index} {name} ({bus_id})" for index, (bus_id, name) in enumerate(cards))
        print(f"mathperf card: NVML sees {len(cards)} cards: {listed}; the name above is the first visible one's",
              file=sys.stderr)
    return 0


def _bless(history: str, run_ids: list[int]) -> int:
    """``mathperf bless RUN [RUN ...]``: these runs together become the baseline of ``--mathperf-baseline blessed``."""
    from pytest_mathperf.history import History, HistoryError

    try:
        with History(history) as store:
            records = store.bless(run_ids)
    except HistoryError as error:
        print(f"mathperf bless: {error}", file=sys.stderr)
        return 1
    for run_id, record in zip(run_ids, records):
        for warning in bless_warnings(record):
            print(f"mathperf bless: warning: run {run_id} {warning}", file=sys.stderr)
    models = sorted({f"{model.model} on {model.card!r}" for record in records for model in record.models})
    runs = "run" if len(run_ids) == 1 else "runs"
    print(f"{runs} {', '.join(map(str, run_ids))} now the blessed baseline for {', '.join(models)}")
    if len(run_ids) < 3:
        print(f"mathperf bless: timings against blessed runs need 3 blessed together, to know how much runs differ; "
              f"bless {3 - len(run_ids)} more with these (`mathperf bless RUN RUN RUN`)", file=sys.stderr)
    return 0


def bless_warnings(record: RunRecord) -> list[str]:
    """Why a run makes a doubtful baseline: it failed its gate, or was measured on a busy host."""
    found = []
    failed = [budget.name for budget in record.budgets if budget.verdict == "failed"]
    failed += [f"compare {comparison.name}" for comparison in record.comparisons if comparison.verdict == "regression"]
    if failed:
        found.append(f"failed its gate ({', '.join(failed)}): a baseline that fails lets worse through")
    if record.environment.get("host_busy"):
        found.append(f"was measured on a busy host ({record.environment['host_busy']}): its timings are slower than the model")
    return found


def _report(history: str, output: Path) -> int:
    """``mathperf report``: one line on success or on error, and the exit code."""
    from pytest_mathperf.history import HistoryError, parse_location
    from pytest_mathperf.report.html import holds_something_else, page_from_history, write_page

    try:
        location = parse_location(history)
    except HistoryError as error:
        print(f"mathperf report: --history: {error}", file=sys.stderr)
        return 2
    if location.path is not None and location.path.resolve() == output.resolve():
        print(f"mathperf report: -o {output} is the history itself; writing the report there would replace it", file=sys.stderr)
        return 2
    if holds_something_else(output):
        print(f"mathperf report: -o {output} is a file that is not an HTML page; writing the report there would replace it", file=sys.stderr)
        return 2
    try:
        rendered = page_from_history(history)
    except HistoryError as error:
        print(f"mathperf report: {error}", file=sys.stderr)
        return 1
    if rendered.runs == 0:  # an empty page would replace a report that had something in it
        print(f"mathperf report: {history} holds no complete run yet; {output} is left as it is", file=sys.stderr)
        return 1
    replaced = output.exists()
    try:
        write_page(output, rendered.page)
    except OSError as error:
        print(f"mathperf report: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f"{'replaced' if replaced else 'wrote'} {output} ({rendered.runs} runs, {rendered.models} models)")
    return 0


def _add_calibrate(commands: argparse._SubParsersAction) -> None:
    calibrate = commands.add_parser(
        "calibrate",
        help="run the gate N times (or read N recorded runs) and write this card's budgets into thresholds.yaml",
    )
    calibrate.add_argument("--model", action="append", required=True, help="model to calibrate (as --mathperf-model); repeatable")
    calibrate.add_argument("--suites", action="append", help="suite file or folder (as --mathperf-suites); repeatable, default suites")
    calibrate.add_argument("--runs", type=int, default=3, help="runs to derive the budgets from (default %(default)s)")
    calibrate.add_argument("--card", help="card name to write under (default: the detected one, as `mathperf card` prints)")
    calibrate.add_argument("--thresholds", type=Path, default=Path("thresholds.yaml"), help="budgets file to edit (default %(default)s)")
    calibrate.add_argument("--from-history", action="store_true", help="use the last N recorded runs instead of measuring")
    calibrate.add_argument("--history", default=str(DEFAULT_HISTORY), help="with --from-history: " + HISTORY_HELP)
    calibrate.add_argument("--update", action="store_true", help="write into an existing entry for this card and model (its other budgets stay)")
    calibrate.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    calibrate.add_argument("--compare", action="store_true", help="also write compare: margins from the same spread")
    calibrate.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate per timing and accuracy budget (default %(default)s)")
    calibrate.add_argument(
        "--floor-margin", type=_at_least_zero(float), default=0.10, help="least timing margin, share of the mean (default %(default)s)"
    )
    calibrate.add_argument(
        "--memory-margin", type=_at_least_zero(float), default=0.10, help="memory budget above the peak (default %(default)s)"
    )
    for flag in ("backend", "endpoint", "device", "dtype"):
        calibrate.add_argument(f"--{flag}", help=f"as --mathperf-{flag}")
    calibrate.add_argument("--repeats", type=int, help="as --mathperf-repeats")
    calibrate.add_argument(
        "--busy-retries", type=_at_least_zero(int), help="runs to add when the gate finds the host busy (default: --runs)"
    )
    calibrate.add_argument(
        "--shared-host", action="store_true",
        help="a host that is never quiet (a shared CI runner): busy runs count and their load is in the spread; needs --runs 10 or more",
    )


def _shard_count(text: str) -> int:
    """An argparse type: how many shards, at least 2 (one shard is the unsharded gate)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"at least 2 shards (one is the unsharded gate: drop --shards), got {value}")
    return value


def _at_least_zero(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: a finite number ≥ 0 (a negative margin writes budgets no run can meet)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {'whole ' if kind is int else ''}number, got {text!r}") from None
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text}")
        return value

    return parse


def _calibrate(args: argparse.Namespace) -> int:
    from pytest_mathperf.calibrate import SHARED_HOST_RUNS, CalibrationSettings, GateOptions, calibrate_command

    if args.runs < 2:
        print(f"mathperf calibrate: --runs {args.runs}: at least 2 runs are needed to see a spread", file=sys.stderr)
        return 2
    if not 0 < args.alpha < 0.5:
        print(f"mathperf calibrate: --alpha {args.alpha}: a false-alarm rate between 0 and 0.5", file=sys.stderr)
        return 2
    if args.shared_host and args.runs < SHARED_HOST_RUNS:
        print(f"mathperf calibrate: --shared-host needs --runs {SHARED_HOST_RUNS} or more: the neighbours' load must show "
              "its reach in the spread", file=sys.stderr)
        return 2
    options = GateOptions(
        suites=tuple(args.suites or ["suites"]), card=args.card, backend=args.backend, endpoint=args.endpoint,
        device=args.device, dtype=args.dtype, repeats=args.repeats,
    )
    settings = CalibrationSettings(
        runs=args.runs, alpha=args.alpha, floor_margin=args.floor_margin, memory_margin=args.memory_margin,
        compare=args.compare, busy_retries=args.busy_retries, shared_host=args.shared_host,
    )
    return calibrate_command(
        args.model, options, settings, args.thresholds, args.history,
        from_history=args.from_history, update=args.update, dry_run=args.dry_run,
    )


if __name__ == "__main__":
    sys.exit(main())
