"""A fleet of runners on one history: many gates writing at once, and a password that is never written down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import ARITHMETIC_SUITE, write
from scripted import conftest_source
from test_history import ROOT

from pytest_mathperf.cli import main
from pytest_mathperf.history import History

WRITERS = 8
RUNS_PER_WRITER = 3
CARDS = ("NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB")

#: The fleet's model: scripted (tests/scripted.py), taking real time per generation so that the
#: writers' runs overlap. What is tested is the history under concurrent writers, not a model: a
#: real model would only add its import and load time to each of the eight processes.
FLEET_MODEL = "fleet-model"
FLEET_SCRIPT = {"*": {"e2e_ms": [40.0], "sleep": True}}

#: One writer: a runner's process that runs the real gate three times in a row, started with the others.
WRITER = """
import sys, time
from pathlib import Path
import pytest

folder, history, card = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(folder / ("ready-" + sys.argv[4])).touch()
while not (folder / "go").exists():
    time.sleep(0.01)
codes = []
for _ in range({runs}):
    codes.append(int(pytest.main([
        "--mathperf", "--mathperf-backend=scripted", "--mathperf-model={model}", "--mathperf-device=cpu",
        "--mathperf-busy-guard=off", "-p", "no:cacheprovider", "-q",
        "--mathperf-suites", str(folder / "suites"), "--mathperf-card", card, "--mathperf-history", history,
        "--rootdir", str(folder), "-c", str(folder / "pytest.ini"),
    ])))
print("exit codes", codes, flush=True)
sys.exit(max(codes))
"""

SMALL_SUITE = """
suite: fleet
defaults:
  max_new_tokens: 48
cases:
  - id: add
    prompt: "What is 705 + 583?"
    answer: 1288
  - id: sub-en
    prompt: "What is 527 - 476?"
    answer: 51
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_eight_gates_writing_at_once_all_land(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    """8 writers × 3 runs of the real gate, all at once, on one history."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "conftest.py").write_text(conftest_source(FLEET_SCRIPT), encoding="utf-8")
    (tmp_path / "suites" / "fleet.yaml").write_text(SMALL_SUITE, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    location = str(tmp_path / "fleet.db") if kind == "sqlite" else request.getfixturevalue("postgres_url")
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(runs=RUNS_PER_WRITER, model=FLEET_MODEL), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), location, CARDS[index % 2], str(index)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(WRITERS)
    ]
    try:
        deadline = time.monotonic() + 300
        while len(list(tmp_path.glob("ready-*"))) < WRITERS:
            assert time.monotonic() < deadline and all(writer.poll() is None for writer in writers)
            time.sleep(0.05)
        (tmp_path / "go").touch()
        outputs = [writer.communicate(timeout=900)[0] for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    for writer, output in zip(writers, outputs):
        assert writer.returncode == 0, output[-3000:]
        assert f"exit codes {[0] * RUNS_PER_WRITER}" in output
    with History(location) as history:
        ids = history.run_ids()
        runs = [history.stored_run(run_id) for run_id in ids]
        assert history.incomplete_run_ids() == []
        assert history.integrity_check() == "ok"
        cells = history.latest_per_card_and_model()
    assert len(runs) == WRITERS * RUNS_PER_WRITER
    assert len({run.uid for run in runs}) == len(runs)
    assert Counter(run.record.models[0].card for run in runs) == {card: len(runs) // 2 for card in CARDS}
    for run in runs:  # no torn run: every run has both cases, each with its generation and a verdict
        assert run.complete
        assert [case.case for case in run.record.cases] == ["add", "sub-en"]
        assert all(len(case.generations) == 1 and case.passed for case in run.record.cases)
    assert sorted(cells) == sorted((card, FLEET_MODEL) for card in CARDS)
    assert main(["history", "check", "--history", location]) == 0


def test_the_password_is_never_written_anywhere(pytester, run_gate, postgres_server, monkeypatch, capsys) -> None:
    """As the API key: PGPASSWORD reaches the server, and no history row, JUnit file, report or message holds it."""
    secret = "pg-SECRET-7c1e9f"
    database = postgres_server.new_database()
    postgres_server.sql(f"CREATE ROLE fleet LOGIN PASSWORD '{secret}'")
    postgres_server.sql(f"ALTER DATABASE {database} OWNER TO fleet")
    url = postgres_server.url(database, user="fleet")
    write(pytester, "suites/arithmetic.yaml", ARITHMETIC_SUITE)

    monkeypatch.setenv("PGPASSWORD", "wrong-password")
    refused = run_gate("--mathperf-history", url, history=True)
    assert refused.result.ret == pytest.ExitCode.USAGE_ERROR
    refused.result.stderr.fnmatch_lines([f"ERROR: --mathperf-history: {url} cannot be reached or written: *password authentication failed for user \"fleet\"*"])

    with_password = url.replace("fleet@", f"fleet:{secret}@")
    on_the_command_line = run_gate("--mathperf-history", with_password, history=True)
    assert on_the_command_line.result.ret == pytest.ExitCode.USAGE_ERROR
    on_the_command_line.result.stderr.fnmatch_lines([f"ERROR: --mathperf-history: {url}: the URL holds a password, *PGPASSWORD*"])

    monkeypatch.setenv("PGPASSWORD", secret)
    run = run_gate("--mathperf-history", url, "--mathperf-html", "report.html", history=True)
    run.result.assert_outcomes(passed=3)
    run.result.stdout.fnmatch_lines([f"mathperf: recorded run 1 in {url}"])
    assert main(["report", "--history", url, "-o", str(pytester.path / "fleet.html")]) == 0
    assert main(["history", "check", "--history", url]) == 0
    stored = "\n".join(
        repr(row)
        for table in ("mathperf_meta", "runs", "models", "cases", "generations", "budgets", "metric_stats")
        for row in postgres_server.sql(f"SELECT * FROM {table}", database)
    )
    assert "mathperf-tiny" in stored  # the dump is of the real rows
    texts = {
        "history rows": stored,
        "JUnit": (pytester.path / "junit.xml").read_text(encoding="utf-8"),
        "report": (pytester.path / "report.html").read_text(encoding="utf-8"),
        "fleet report": (pytester.path / "fleet.html").read_text(encoding="utf-8"),
        "terminal": run.output + run.result.stderr.str() + on_the_command_line.result.stderr.str(),
        "commands": "".join(capsys.readouterr()),
    }
    for name, text in texts.items():
        assert secret not in text, f"the password is in the {name}"
    leftovers = [path for path in pytester.path.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
    assert leftovers == []
