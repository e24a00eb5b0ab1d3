"""The history as the gate uses it, through the real gate: nothing measured is ever lost.

A history or report that cannot be written is refused before any model loads; a history that
fails during the run fails the session (exit status 6) and the run goes to a side file that
``mathperf history import`` takes; a run killed mid-way leaves what it measured, marked incomplete.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ARITHMETIC_SUITE, DEMO_MODEL, write
from scripted import conftest_source
from test_history import ROOT

from pytest_mathperf.cli import main
from pytest_mathperf.history import History
from pytest_mathperf.history.recording import EXIT_RUN_NOT_RECORDED


def _refused(run, option: str, message: str) -> None:
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([f"ERROR: {option}: {message}"])
    assert "mathperf-tiny" not in run.output  # refused before any model loaded or any case ran


def test_a_history_that_cannot_be_created_is_refused_at_start(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    (pytester.path / "not-a-folder").write_text("a file where the history's folder should be")
    run = run_gate("--mathperf-history", "not-a-folder/history.db", history=True)
    _refused(run, "--mathperf-history", "*not-a-folder/history.db: cannot create its folder: *")


def test_an_unwritable_report_path_is_refused_at_start(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    (pytester.path / "not-a-folder").write_text("a file where the report's folder should be")
    run = run_gate("--mathperf-html", "not-a-folder/report.html")
    _refused(run, "--mathperf-html", "*not-a-folder/report.html cannot be written: *")
    (pytester.path / "a-folder.html").mkdir()
    run = run_gate("--mathperf-html", "a-folder.html")
    _refused(run, "--mathperf-html", "*a-folder.html cannot be written: is a folder")


def test_an_output_that_would_replace_an_input_or_the_history_is_refused_at_start(pytester, run_gate) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "thresholds.yaml", "version: 1\n")
    history = ("--mathperf-history", "history.db")
    run = run_gate(*history, "--mathperf-html", "history.db", history=True)
    _refused(run, "--mathperf-html", "*/history.db is the history (--mathperf-history); writing the output there would replace it")
    run = run_gate("--mathperf-markdown", "thresholds.yaml")
    _refused(run, "--mathperf-markdown", "*/thresholds.yaml is the budgets file (--mathperf-thresholds); *")
    run = run_gate("--mathperf-markdown", "suites/summary.yaml")
    _refused(run, "--mathperf-markdown", "*/suites/summary.yaml is a suite file under *suites; *")
    run = run_gate("--mathperf-html", "out.html", "--mathperf-markdown", "out.html")
    _refused(run, "--mathperf-markdown", "*/out.html is also the HTML report's file")
    assert sorted(path.name for path in pytester.path.iterdir() if path.is_file()) == ["thresholds.yaml"]


def test_an_unreachable_or_read_only_postgres_history_is_refused_at_start(pytester, run_gate, postgres_server) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    closed_port = f"postgresql://mathperf@127.0.0.1:{postgres_server.port + 1 if postgres_server.port < 65535 else 1}/x"
    run = run_gate("--mathperf-history", closed_port, history=True)
    _refused(run, "--mathperf-history", f"{closed_port} cannot be reached or written: *")
    database = postgres_server.new_database()
    postgres_server.sql(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    url = postgres_server.url(database)
    run = run_gate("--mathperf-history", url, history=True)
    _refused(run, "--mathperf-history", f"{url}: cannot execute CREATE TABLE in a read-only transaction")


BREAK_SQLITE = """
from pathlib import Path

def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith("::add[mathperf-tiny]"):
        for suffix in ("-wal", "-shm"):
            Path("history.db" + suffix).unlink(missing_ok=True)
        Path("history.db").write_bytes(b"the disk went bad" * 1000)
"""

BREAK_POSTGRES = """
import psycopg

def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.endswith("::add[mathperf-tiny]"):
        with psycopg.connect({admin!r}, autocommit=True) as connection:
            connection.execute("ALTER DATABASE {database} ALLOW_CONNECTIONS false")
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
            )
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_history_that_fails_during_the_run_loses_nothing(pytester, run_gate, kind: str, request, capsys) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    if kind == "sqlite":
        location = str(pytester.path / "history.db")
        write(pytester, "conftest.py", BREAK_SQLITE)
        error = f"{location} is corrupt or not an SQLite file: file is not a database"
    else:
        server = request.getfixturevalue("postgres_server")
        database = server.new_database()
        location = server.url(database)
        write(pytester, "conftest.py", BREAK_POSTGRES.format(admin=server.url(), database=database))
        error = f"{location} cannot be reached or written: *database \"{database}\" is not currently accepting connections*"
    run = run_gate("--mathperf-history", location, history=True)
    run.result.assert_outcomes(passed=3)
    assert run.result.ret == EXIT_RUN_NOT_RECORDED == 6
    run.result.stdout.fnmatch_lines([f"mathperf: run NOT recorded: {error}", "mathperf: the run is saved in *"])
    [saved] = re.findall(r"mathperf history import (\S+) --history (\S+)", run.output)
    side_file = Path(saved[0])
    assert saved[1] == location and json.loads(side_file.read_text(encoding="utf-8"))["complete"] is True
    if kind == "sqlite":
        os.replace(location, pytester.path / "broken.db")  # the user moves the bad file away
        expected = f"{side_file} → {location}: 1 runs added, 0 incomplete runs completed, 0 already there"
    else:
        server.sql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        # The run row begun at the start is there, incomplete: the side file completes it.
        expected = f"{side_file} → {location}: 0 runs added, 1 incomplete runs completed, 0 already there"
    capsys.readouterr()
    assert main(["history", "import", str(side_file), "--history", location]) == 0
    assert capsys.readouterr().out.splitlines() == [expected]
    with History(location) as history:
        [run_id] = history.run_ids()
        recorded = history.run(run_id)
        assert history.incomplete_run_ids() == [] and history.integrity_check() == "ok"
    assert {case.case: case.passed for case in recorded.cases} == {"add": True, "sub": True, "sub-en": True}
    assert recorded.models[0].model == DEMO_MODEL
    assert main(["history", "import", str(side_file), "--history", location]) == 0  # a second time: nothing


#: The killed gate runs a scripted model (tests/scripted.py): what is tested is what the history
#: keeps of a process killed mid-run, and a real model would only add its import and load time.
KILLED_MODEL = "killed-model"
HANG_AFTER_TWO_CASES = """
import time
from pathlib import Path
import pytest

seen = []

@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    if report.when == "call" and "[killed-model]" in report.nodeid:
        seen.append(report.nodeid)
        if len(seen) == 2:
            Path("two-cases-reported").touch()
            time.sleep(600)  # a CI job's timeout is about to kill -9 this run
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_run_killed_mid_way_leaves_what_it_measured_marked_incomplete(pytester, kind: str, request, capsys) -> None:
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)
    write(pytester, "conftest.py", conftest_source({"*": {}}) + HANG_AFTER_TWO_CASES)
    location = str(pytester.path / "history.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    gate = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--mathperf", "--mathperf-backend=scripted", f"--mathperf-model={KILLED_MODEL}",
         "--mathperf-device=cpu", "-p", "no:cacheprovider", "--mathperf-history", location],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )
    deadline = time.monotonic() + 300
    while not (pytester.path / "two-cases-reported").exists():
        assert gate.poll() is None, gate.communicate()[0]
        assert time.monotonic() < deadline, "the gate never reported two cases"
        time.sleep(0.05)
    os.kill(gate.pid, signal.SIGKILL)
    gate.communicate(timeout=60)
    with History(location) as history:
        [run_id] = history.incomplete_run_ids()
        partial = history.run(run_id)
        assert history.latest_run() is None  # an incomplete run is no trend point
        assert history.integrity_check() == "ok"
    assert [case.case for case in partial.cases] == ["add", "sub"]
    assert all(case.generations and case.generations[0].metrics["ttft_ms"] > 0 for case in partial.cases)
    assert partial.models[0].model == KILLED_MODEL and partial.environment["card"] == "cpu"
    assert main(["history", "check", "--history", location]) == 0
    assert "incomplete (killed mid-way, or being recorded now): runs 1" in capsys.readouterr().out
