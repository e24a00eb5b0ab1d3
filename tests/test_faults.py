"""Faults around the history and the stores: a sound file on a read-only mount, hostile imports, text with NUL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_history import make_run

from pytest_mathperf.history import History

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
