"""Recording one gate session as it goes, so that nothing it measured is lost.

The outputs are checked before any model is loaded; the run row is begun when the items are
known, each case lands in its own short transaction as it is reported, and the whole run is
written at the end. Should the history fail on the way, the session goes on, the run is saved
to a side file the user imports later, and the session fails with :data:`EXIT_RUN_NOT_RECORDED`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from pytest_mathperf.history.database import HistoryError, HistoryLocation
from pytest_mathperf.history.store import History, new_run_uid
from pytest_mathperf.history.transfer import write_side_file
from pytest_mathperf.results import BudgetRecord, CaseRecord, ModelRecord, RunRecord

#: The session's exit status when the gate had nothing else to fail but its run is not in the history.
EXIT_RUN_NOT_RECORDED = 6


def ensure_writable_file(path: Path) -> None:
    """Raise OSError unless ``path`` (and its folder) can be written; leaves no new file behind."""
    if path.is_dir():
        raise IsADirectoryError(21, "is a folder", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    existed = path.exists()
    with open(path, "ab"):
        pass
    if not existed:
        os.unlink(path)


class RunRecorder:
    """One session's run on its way into the history; ``failure`` says why it did not get there."""

    def __init__(self, location: HistoryLocation) -> None:
        self.location = location
        self.uid = new_run_uid()
        self.run_id: int | None = None
        self.failure: str | None = None
        # Each write opens its own connection, so a history file replaced or broken mid-run is
        # noticed at the next write. This idle one only keeps the SQLite file open in between: the
        # last connection to close checkpoints the WAL with a disk flush, about 10 ms per case.
        self._keeper: History | None = None
        # PostgreSQL: one connection for the session (a new one costs about 20 ms); a broken one is
        # dropped, so the final write tries a fresh connection.
        self._session: History | None = None

    def ensure_writable(self) -> None:
        """Before the session spends any time: create or migrate the store and prove it takes a write."""
        with History(self.location) as history:
            history.ensure_writable()

    def begin(self, started_at: float, environment: Callable[[], dict[str, str]]) -> None:
        if self.run_id is None:
            self.run_id = self._write(lambda history: history.begin_run(self.uid, started_at, environment()))
            if self.run_id is not None and not self.location.is_postgres:
                self._keeper = History(self.location)
                try:
                    self._keeper.latest_run_id()
                except HistoryError:
                    self.close()

    def case(self, case: CaseRecord, model: ModelRecord) -> None:
        if self.run_id is not None:
            self._write(lambda history: history.record_case(self.uid, case, model))

    def budget(self, budget: BudgetRecord) -> None:
        if self.run_id is not None:
            self._write(lambda history: history.record_budget(self.uid, budget))

    def finish(self, run: RunRecord, partial: str | None = None) -> list[str]:
        """Write the whole run (or its side file), marked incomplete when ``partial`` says why; the lines to show the user.

        The final write is tried even after a failure on the way: a history that came back (a
        database restarted mid-run) then holds the whole run, and nothing was lost.
        """
        earlier, self.failure = self.failure, None
        complete = partial is None
        run_id = self._write(lambda history: history.finish_run(self.uid, run, complete=complete))
        self.close()
        if run_id is not None:
            state = "" if complete else f" (marked incomplete: {partial})"
            lines = [f"mathperf: recorded run {run_id} in {self.location}{state}"]
            if earlier is not None:
                lines.append(f"mathperf: the history failed during the run ({earlier}); the whole run was recorded at the end")
            return lines
        lines = [f"mathperf: run NOT recorded: {self.failure}"]
        try:
            side_file = write_side_file(run, self.uid, complete, self.location.path.parent if self.location.path else None)
        except OSError as error:
            return lines + [f"mathperf: the run could not be saved to a side file either: {error}"]
        return lines + [
            f"mathperf: the run is saved in {side_file}; once the history is repaired: "
            f"mathperf history import {side_file} --history {self.location}"
        ]

    def close(self) -> None:
        for history in (self._keeper, self._session):
            if history is not None:
                history.close()
        self._keeper = self._session = None

    @property
    def recorded(self) -> bool:
        return self.failure is None

    def _write(self, action: Callable[[History], int | None]) -> int | None:
        """Run one write; after the first failure, none is tried again until the final one."""
        if self.failure is not None:
            return None
        if self.location.is_postgres:
            self._session = history = self._session or History(self.location)
        else:
            history = History(self.location)
        try:
            result = action(history)
            return result if result is not None else 0
        except HistoryError as error:
            self.failure = str(error)
            history.close()
            self._session = None
            return None
        finally:
            if history is not self._session:
                history.close()
