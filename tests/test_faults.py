"""Faults around the history and the stores: a sound file on a read-only mount, hostile imports, text with NUL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_history import make_run

from pytest_mathperf.cli import main
from pytest_mathperf.history import History
from pytest_mathperf.history.database import NUL_ESCAPED
from pytest_mathperf.history.transfer import write_side_file
from pytest_mathperf.results import RunRecord

ROOT = Path(__file__).resolve().parent.parent


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


def _in_read_only_mount(folder: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` where ``folder`` is a read-only bind mount (a user namespace: no root needed)."""
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *command],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
    )


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs unshare and user namespaces for a read-only mount")
def test_a_sound_history_on_a_read_only_mount_is_read_not_called_corrupt(tmp_path: Path) -> None:
    shelf = tmp_path / "shelf"
    history = shelf / "history.db"
    with History(history) as store:
        store.append(make_run("a"))  # WAL mode: readers normally make a -shm file beside it
    report = tmp_path / "report.html"
    mathperf = [sys.executable, "-m", "pytest_mathperf.cli"]
    checked = _in_read_only_mount(shelf, *mathperf, "history", "check", "--history", str(history))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "ok"
    written = _in_read_only_mount(shelf, *mathperf, "report", "--history", str(history), "-o", str(report))
    assert written.returncode == 0, written.stderr
    assert written.stdout == f"wrote {report} (1 runs, 2 models)\n"
    assert "corrupt" not in checked.stderr + written.stderr


def _with_nul(tag: str) -> RunRecord:
    """A run whose prompt and output hold NUL (a served model can send one), and text that looks like the escape."""
    run = make_run(tag, cases=2, repeats=1)
    case = run.cases[0]
    generation = replace(case.generations[0], output="a\x00b \\boxed{17}", extracted="17\x00")
    cases = (replace(case, prompt="p\x00q", generations=(generation,)), replace(run.cases[1], prompt=NUL_ESCAPED + '"x"'))
    return replace(run, cases=cases + run.cases[2:])


def test_text_with_nul_is_stored_losslessly_on_postgresql(tmp_path: Path, postgres_url: str, capsys) -> None:
    run = _with_nul("nul")
    with History(postgres_url) as history:
        run_id = history.append(run)
        assert history.run(run_id) == run
    # an SQLite history holding such text imports whole; so does the side file of a refused run
    sqlite = tmp_path / "history.db"
    with History(sqlite) as history:
        history.append(_with_nul("sqlite"))
    side_file = write_side_file(_with_nul("side"), "f" * 32, True, tmp_path)
    for source in (sqlite, side_file):
        assert main(["history", "import", str(source), "--history", postgres_url]) == 0, capsys.readouterr().err
    with History(postgres_url) as history:
        stored = [history.run(summary.run_id) for summary in history.summaries()]
    assert [stored_run.cases[0].prompt for stored_run in stored] == ["p\x00q"] * 3
    assert {stored_run.cases[0].generations[0].output for stored_run in stored} == {"a\x00b \\boxed{17}"}
    assert stored[1].cases[1].prompt == NUL_ESCAPED + '"x"'


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"format": "pytest-mathperf run", "version": 1, "uid": "u", "complete": true, "run": RUN}',
         "a run file with a malformed field: run.cases: expected a list, got a string"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a pytest-mathperf run file"),
        ('{"format": "pytest-mathperf run", "version": 1, "uid": "u", "complete": true, "run": LONE}',
         "a run file with a malformed field: run.environment.host: a lone UTF-16 surrogate, not text"),
    ],
    ids=["cases-a-string", "deep-nesting", "lone-surrogate"],
)
def test_a_hostile_run_file_is_one_line_naming_the_field_and_nothing_is_imported(
    tmp_path: Path, capsys, document: str, message: str
) -> None:
    run = make_run("hostile", cases=1, repeats=1).to_dict()
    broken = {**run, "cases": "x"}
    lone = {**run, "environment": {**run["environment"], "host": "\ud800"}}
    text = document.replace("RUN", json.dumps(broken)).replace("LONE", json.dumps(lone))
    source = tmp_path / "run.json"
    source.write_text(text, encoding="utf-8")
    history = tmp_path / "history.db"
    assert main(["history", "import", str(source), "--history", str(history)]) == 2
    assert capsys.readouterr().err == f"mathperf history import: {source}: {message}\n"
    assert not history.exists() or History(history).summaries(include_incomplete=True) == []
