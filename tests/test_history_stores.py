"""The same history guarantees on both stores: SQLite and a real PostgreSQL server (tests/pg.py).

Round trips, the recording of a run as it goes, import between stores (idempotent, keyed on the
run uid), a writer killed mid-transaction, `mathperf history check`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_history import ROOT, make_run

from pytest_mathperf.cli import main
from pytest_mathperf.history import SCHEMA_VERSION, History, HistoryError, parse_location
from pytest_mathperf.history.transfer import import_history, write_side_file

PREVIOUS_RELEASE = ROOT / "tests" / "data" / "history-0.1.0-da657ef.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A history location: an SQLite file path, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "history.db")
    return request.getfixturevalue("postgres_url")


def test_round_trip_and_summaries(store: str) -> None:
    first, second = make_run("a", seed=1), make_run("b", seed=2)
    with History(store) as history:
        ids = [history.append(first), history.append(second)]
        assert history.run(ids[0]) == first and history.run(ids[1]) == second
        assert history.latest_run() == second
        [summary_a, summary_b] = history.summaries()
    assert summary_b.run_id == ids[1] and summary_b.complete and len(summary_b.uid) == 32
    assert summary_a.budgets_failed == 4 and summary_a.cases_failed == 2
    with History(store) as reopened:
        assert reopened.run(ids[0]) == first
        assert reopened.check().schema_version == SCHEMA_VERSION


def test_a_run_recorded_as_it_goes_is_incomplete_until_finished(store: str) -> None:
    run = make_run("live", cases=3)
    with History(store) as history:
        earlier = history.append(make_run("earlier"))
        run_id = history.begin_run("uid-live", run.started_at, dict(run.environment))
        for case in run.cases[:2]:
            history.record_case("uid-live", case, run.models[0])
        history.record_budget("uid-live", run.budgets[0])
        assert history.incomplete_run_ids() == [run_id]
        partial = history.run(run_id)
        assert partial.cases == run.cases[:2] and partial.models == run.models[:1]
        assert partial.budgets == run.budgets[:1]
        assert history.latest_run_id() == earlier  # trends and "latest" read complete runs only
        assert [s.run_id for s in history.summaries()] == [earlier]
        assert [s.complete for s in history.summaries(include_incomplete=True)] == [True, False]
        assert history.finish_run("uid-live", run) == run_id
        assert history.run(run_id) == run and history.incomplete_run_ids() == []
        assert history.latest_run_id() == run_id
        assert history.integrity_check() == "ok"


def test_adding_to_a_run_that_was_never_begun_is_an_error(store: str) -> None:
    run = make_run("x")
    with History(store) as history:
        with pytest.raises(HistoryError, match="has no run nope to add to"):
            history.record_case("nope", run.cases[0], run.models[0])


def test_import_between_stores_is_idempotent(store: str, tmp_path: Path) -> None:
    source = tmp_path / "runner.db"
    runs = [make_run("runner", seed=seed) for seed in range(3)]
    with History(source) as runner:
        for run in runs:
            runner.append(run)
        runner.begin_run("killed", 1_700_000_000.0, {"host": "runner"})
    with History(store) as fleet:
        fleet.append(make_run("other-card"))
        first = import_history(source, fleet)
        assert (len(first.added), first.replaced, first.present, first.unreadable) == (4, [], [], [])
        again = import_history(source, fleet)
        assert (again.added, len(again.present)) == ([], 4)
        ids = fleet.run_ids()
        assert len(ids) == 5
        assert [fleet.run(run_id) for run_id in ids[1:4]] == runs
        assert fleet.incomplete_run_ids() == [ids[4]]
        assert fleet.integrity_check() == "ok"
    with History(tmp_path / "back.db") as back:  # and the other way: the store into a new file
        assert len(import_history(store, back).added) == 5
        assert [back.run(run_id) for run_id in back.run_ids()[1:4]] == runs


def test_a_side_file_completes_the_incomplete_copy_of_its_run(store: str, tmp_path: Path) -> None:
    run = make_run("side")
    with History(store) as history:
        run_id = history.begin_run("uid-side", run.started_at, dict(run.environment))
        history.record_case("uid-side", run.cases[0], run.models[0])
    side_file = write_side_file(run, "uid-side", True, tmp_path)
    with History(store) as history:
        result = import_history(side_file, history)
        assert result.replaced == ["uid-side"] and result.added == []
        assert history.run_ids() == [run_id] and history.run(run_id) == run
        assert history.incomplete_run_ids() == []
        assert import_history(side_file, history).present == ["uid-side"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda run: run.update(started_at="yesterday"), "run.started_at: expected a number, got 'yesterday'"),
        (
            lambda run: run["cases"][0]["generations"][0]["metrics"].update(ttft_ms="fast"),
            "run.cases[0].generations[0].metrics.ttft_ms: expected a number, got 'fast'",
        ),
    ],
    ids=["start", "metric"],
)
def test_a_side_file_with_a_malformed_number_is_refused_and_nothing_is_added(tmp_path: Path, edit, field: str) -> None:
    side_file = write_side_file(make_run("bad"), "uid-bad", True, tmp_path)
    document = json.loads(side_file.read_text(encoding="utf-8"))
    edit(document["run"])
    side_file.write_text(json.dumps(document), encoding="utf-8")
    with History(tmp_path / "history.db") as history:
        with pytest.raises(HistoryError) as error:
            import_history(side_file, history)
        assert str(error.value) == f"{side_file}: a run file with a malformed field: {field}"
        assert history.run_ids() == []  # reports drawn from the history keep working


def test_the_previous_release_history_imports_once(store: str, tmp_path: Path) -> None:
    """tests/data/history-0.1.0-da657ef.db was written by the gate at commit da657ef (schema 2): two demo runs, two cards."""
    before = PREVIOUS_RELEASE.read_bytes()
    with History(store) as fleet:
        first = import_history(PREVIOUS_RELEASE, fleet)
        assert len(first.added) == 2 and first.unreadable == []
        assert import_history(PREVIOUS_RELEASE, fleet).present == first.added
        runs = [fleet.run(run_id) for run_id in fleet.run_ids()]
        cells = fleet.latest_per_card_and_model()
    assert PREVIOUS_RELEASE.read_bytes() == before  # the source is read through a copy, never migrated in place
    # and no -wal/-shm/-journal file was left beside it
    assert sorted(path.name for path in PREVIOUS_RELEASE.parent.glob(PREVIOUS_RELEASE.name + "*")) == [PREVIOUS_RELEASE.name]
    assert [run.models[0].card for run in runs] == ["cpu", "NVIDIA GeForce RTX 3090"]
    assert all({case.case for case in run.cases} == {"add", "sub"} for run in runs)
    assert all(run.budgets and run.cases[0].generations[0].metrics["ttft_ms"] > 0 for run in runs)
    assert sorted(cells) == [("NVIDIA GeForce RTX 3090", "mathperf-tiny"), ("cpu", "mathperf-tiny")]
    # The same file migrated in place gives the same uids: importing it afterwards adds nothing.
    migrated = tmp_path / "migrated.db"
    shutil.copy(PREVIOUS_RELEASE, migrated)
    with History(migrated) as history:
        assert history.run_ids() == [1, 2]
    with History(store) as fleet:
        assert import_history(migrated, fleet).present == first.added


def test_the_latest_run_per_card_and_model(store: str) -> None:
    older, newer = make_run("older", seed=1), make_run("newer", seed=5)
    with History(store) as history:
        history.append(newer)
        history.append(older)  # imported later, measured earlier
        cells = history.latest_per_card_and_model()
    assert list(cells) == [
        ("NVIDIA GeForce RTX 3090", "Qwen/Qwen2.5-Math-1.5B"),
        ("NVIDIA GeForce RTX 3090", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"),
    ]
    cell = cells[("NVIDIA GeForce RTX 3090", "Qwen/Qwen2.5-Math-1.5B")]
    assert cell.run.environment["host"] == "newer" and cell.summary.model.model == "Qwen/Qwen2.5-Math-1.5B"


WRITER = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from pytest_mathperf.history import History
from test_history import make_run

history = History(sys.argv[1])
seed = 0
while True:
    history.append(make_run("doomed", seed=seed, cases=60, output_chars=3000))
    print(seed, flush=True)
    seed += 1
"""


def test_a_writer_killed_mid_transaction_leaves_nothing_half_written(store: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), tests=str(ROOT / "tests")))
    writer = subprocess.Popen([sys.executable, str(script), store], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    committed = [int(writer.stdout.readline()) for _ in range(2)]
    time.sleep(0.05)  # into the next run's transaction (each takes far longer than this)
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=30)
    with History(store) as history:
        ids = history.run_ids()
        assert len(ids) >= len(committed)
        for seed, run_id in enumerate(ids):
            assert history.run(run_id) == make_run("doomed", seed=seed, cases=60, output_chars=3000)
        assert history.integrity_check() == "ok"
        history.append(make_run("next"))
        assert len(history.run_ids()) == len(ids) + 1


def test_history_check_and_import_commands(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "runner.db"
    with History(source) as runner:
        runner.append(make_run("a"))
        runner.begin_run("killed", 1_700_000_000.0, {"host": "runner"})
    assert main(["history", "import", str(source), "--history", store]) == 0
    assert main(["history", "import", str(source), "--history", store]) == 0
    assert main(["history", "check", "--history", store]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{source} → {store}: 2 runs added, 0 incomplete runs completed, 0 already there"
    assert out[1] == f"{source} → {store}: 0 runs added, 0 incomplete runs completed, 2 already there"
    assert out[2:] == [f"{store}: schema {SCHEMA_VERSION}, 2 runs", "incomplete (killed mid-way, or being recorded now): runs 2", "ok"]


def test_check_finds_orphans_and_an_old_schema_without_changing_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old.db"
    shutil.copy(PREVIOUS_RELEASE, old)
    before = old.read_bytes()
    assert main(["history", "check", "--history", str(old)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{old}: schema 2 (upgraded to {SCHEMA_VERSION} on the next write), 2 runs", "ok"]
    assert old.read_bytes() == before
    with sqlite3.connect(old) as connection:
        connection.execute("DELETE FROM runs WHERE id = 1")
    connection.close()
    assert main(["history", "check", "--history", str(old)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("problem")] == [
        "problem: 2 cases without their run",
        "problem: 1 models without their run",
        "problem: 2 budgets without their run",
        "problem: 16 statistics without their run",
    ]
    assert out[-1] == "4 problems; see the README on salvaging a damaged history"


def test_check_names_what_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing, garbage = tmp_path / "missing.db", tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite" * 500)
    assert main(["history", "check", "--history", str(missing)]) == 2
    assert main(["history", "check", "--history", str(garbage)]) == 2
    assert main(["history", "import", str(garbage), "--history", str(tmp_path / "new.db")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"mathperf history check: {missing} does not exist",
        f"mathperf history check: {garbage} is corrupt or not an SQLite file: file is not a database",
        f"mathperf history import: {garbage} is corrupt or not an SQLite file: file is not a database",
    ]


def _damaged_history(folder: Path) -> tuple[Path, list]:
    """A history of four runs with one page of generations overwritten, as a bad sector would."""
    damaged = folder / "history.db"
    runs = [make_run("a", seed=seed, cases=40, output_chars=2000) for seed in range(4)]
    with History(damaged) as history:
        for run in runs:
            history.append(run)
    with sqlite3.connect(damaged) as connection:
        # dbstat (compiled into most SQLite builds) says which page holds what.
        pages = [row[0] for row in connection.execute("SELECT pageno FROM dbstat WHERE name = 'generations' AND pagetype = 'leaf'")]
    connection.close()
    data = bytearray(damaged.read_bytes())
    page = 4096
    victim = pages[len(pages) // 2]
    data[(victim - 1) * page : victim * page] = b"\xff" * page
    damaged.write_bytes(bytes(data))
    return damaged, runs


def test_salvage_a_damaged_file_by_importing_what_still_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's salvage: the runs that read are copied into a new history; the rest are named."""
    damaged, runs = _damaged_history(tmp_path)
    assert main(["history", "check", "--history", str(damaged)]) == 1
    assert "database disk image is malformed" in capsys.readouterr().out
    salvaged = tmp_path / "salvaged.db"
    code = main(["history", "import", str(damaged), "--history", str(salvaged)])
    out = capsys.readouterr().out
    with History(salvaged) as history:
        kept = [history.run(run_id) for run_id in history.run_ids()]
        assert history.integrity_check() == "ok"
    assert code == 1 and "is corrupt: database disk image is malformed" in out
    assert re.search(rf"^not imported: run \d+: {re.escape(str(damaged))} is corrupt: ", out, re.MULTILINE)
    assert 1 <= len(kept) < 4 and all(run in runs for run in kept)


def test_the_commands_refuse_a_url_with_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://fleet:hunter2-secret@127.0.0.1:9/mathperf"
    assert main(["report", "--history", url]) == 2
    assert main(["history", "check", "--history", url]) == 2
    assert main(["history", "import", "old.db", "--history", url]) == 2
    err = capsys.readouterr().err
    assert "hunter2-secret" not in err
    assert err.splitlines() == [
        "mathperf report: --history: postgresql://fleet@127.0.0.1:9/mathperf: the URL holds a password, which would be "
        "written to logs and process lists; remove it from the URL and set PGPASSWORD or a ~/.pgpass line instead",
        *(
            f"mathperf history {command}: postgresql://fleet@127.0.0.1:9/mathperf: the URL holds a password, which would "
            "be written to logs and process lists; remove it from the URL and set PGPASSWORD or a ~/.pgpass line instead"
            for command in ("check", "import")
        ),
    ]


def test_a_malformed_url_is_one_line_naming_it_in_the_gate_and_the_commands(pytester, run_gate, capsys) -> None:
    url = "postgresql://fleet@[::1/mathperf"
    assert main(["report", "--history", url]) == 2
    assert main(["history", "check", "--history", url]) == 2
    expected = f"{url}: not a valid URL (Invalid IPv6 URL); give a postgresql://user@host:port/database URL"
    assert capsys.readouterr().err.splitlines() == [f"mathperf report: --history: {expected}", f"mathperf history check: {expected}"]
    run = run_gate("--mathperf-history", url, history=True)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([f"ERROR: --mathperf-history: {expected}"])
    for secret, url in (("hunter2-secret", "postgresql://fleet:hunter2-secret@db:fifty/mathperf"), ("pa/ss@w", "postgresql://fleet:pa/ss@w@db:5432/x")):
        with pytest.raises(HistoryError) as error:  # a password in a malformed URL is not echoed either
            parse_location(url)
        assert secret not in str(error.value) and "pa" not in str(error.value).split("fleet:", 1)[1].split("@")[0]
        assert str(error.value).startswith("postgresql://fleet:…@db:")


def test_a_url_with_a_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(HistoryError) as error:
        parse_location("postgresql://fleet:hunter2-secret@db.example:5433/mathperf")
    message = str(error.value)
    assert "hunter2-secret" not in message
    assert message.startswith("postgresql://fleet@db.example:5433/mathperf: the URL holds a password")
    assert "PGPASSWORD" in message and "~/.pgpass" in message
    with pytest.raises(HistoryError, match="holds a password"):
        parse_location("postgresql://fleet@db/mathperf?password=hunter2-secret")
    with pytest.raises(HistoryError, match="^mysql://…: not a history location"):
        parse_location("mysql://fleet@db/mathperf")
    assert parse_location("postgresql://fleet@db/mathperf").url == "postgresql://fleet@db/mathperf"


def test_a_run_is_hidden_with_its_reason_and_shown_again(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A typo'd model name's run leaves the trends without a silent delete: recorded, listed, reversible."""
    with History(store) as history:
        first, second = history.append(make_run("a")), history.append(make_run("b", seed=1))
    assert main(["history", "hide", str(second), "--reason", "typo in the model name", "--history", store]) == 0
    with History(store) as history:
        assert [summary.run_id for summary in history.summaries()] == [first]
        assert history.latest_run_id() == first and history.run_ids(include_incomplete=False) == [first]
        assert history.run(second).models  # still stored, whole
        with pytest.raises(HistoryError, match=rf"run {second} is hidden \(typo in the model name\); `mathperf history unhide {second}` first"):
            history.bless([second])
    assert main(["history", "list", "--history", store]) == 0
    assert main(["history", "check", "--history", store]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^run {second}: .* · hidden: typo in the model name$", out, re.M)
    assert re.search(rf"^hidden from the trends: run {second}, \d{{4}}-\d\d-\d\d \d\d:\d\d: typo in the model name$", out, re.M)
    assert main(["history", "unhide", str(second), "--history", store]) == 0
    assert f"run {second} is shown again (it was hidden: typo in the model name)" in capsys.readouterr().out
    with History(store) as history:
        assert [summary.run_id for summary in history.summaries()] == [first, second]


def test_hiding_needs_a_reason_and_a_run_that_exists(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with History(store) as history:
        history.append(make_run("a"))
    assert main(["history", "hide", "1", "--reason", "  ", "--history", store]) == 2
    assert main(["history", "hide", "7", "--reason", "gone", "--history", store]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "mathperf history hide: a hidden run needs a reason (--reason), so that whoever finds it knows why"
    assert err[1].startswith("mathperf history hide: ") and err[1].endswith("has no run 7")
