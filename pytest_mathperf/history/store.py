"""The run history: every run in one store (an SQLite file, or a PostgreSQL database for a fleet of runners).

Guarantees: a run's final write is one transaction, so a writer killed mid-transaction
(Ctrl-C, a crash, ``kill -9``) leaves every earlier run readable and nothing half-written; many
processes appending at once all land (SQLite: ``BEGIN IMMEDIATE`` and a busy timeout make the
others wait; PostgreSQL: plain row inserts, and an advisory lock around schema changes); a
corrupt or foreign store raises :class:`HistoryError`, one line naming it, and is never modified.

While the gate runs, the run is recorded as it goes: a run row marked incomplete at the start,
each case in its own short transaction as it is reported, then the whole run rewritten and
marked complete at the end. A run killed mid-way therefore leaves what it measured, marked
incomplete; trends and "latest run" read complete runs only.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_mathperf.history import rows
from pytest_mathperf.history.database import Database, HistoryError, HistoryLocation, open_database, parse_location
from pytest_mathperf.history.schema import SCHEMA_VERSION, prepare, schema_version
from pytest_mathperf.history.summaries import FleetEntry, RunSummary, latest_per_card_and_model
from pytest_mathperf.results import BudgetRecord, CaseRecord, ModelRecord, RunRecord


def new_run_uid() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoredRun:
    """A run as a store holds it: the record, its identity across stores and whether it finished."""

    run_id: int
    uid: str
    complete: bool
    record: RunRecord


@dataclass(frozen=True)
class CheckReport:
    """What ``mathperf history check`` found: schema version, run counts and every problem."""

    location: str
    schema_version: int | None
    runs: int
    incomplete_runs: tuple[int, ...]
    problems: tuple[str, ...]
    hidden_runs: tuple[tuple[int, float, str], ...] = ()  # (run id, when, why)

    @property
    def ok(self) -> bool:
        return not self.problems


class History:
    """A history store. Opens lazily; an SQLite file and its folders are created on first write."""

    def __init__(self, location: str | Path | HistoryLocation) -> None:
        self.location = parse_location(location)
        self._db: Database | None = None

    @property
    def path(self) -> Path | str:
        """The SQLite file, or the URL of a PostgreSQL history (what a message should name)."""
        return self.location.path if self.location.path is not None else str(self.location)

    def exists(self) -> bool:
        """Whether there is anything to read: an SQLite file that exists, or any PostgreSQL database."""
        return self.location.is_postgres or bool(self.location.path and self.location.path.exists())

    # -- opening --------------------------------------------------------------------------------

    @contextmanager
    def _open(self, *, create: bool) -> Iterator[Database | None]:
        """The open, checked and migrated store, with its errors as HistoryErrors; None when missing."""
        if self._db is None:
            db = open_database(self.location, create=create)
            if db is None:
                yield None
                return
            try:
                with db.errors():
                    prepare(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        with self._db.errors():
            yield self._db

    @contextmanager
    def _writing(self) -> Iterator[Database]:
        with self._open(create=True) as db:
            assert db is not None
            with db.transaction():
                yield db

    def close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def ensure_writable(self) -> None:
        """Create or migrate the store and prove a write goes through, before a run spends any time."""
        with self._open(create=True) as db:
            assert db is not None
            problems = db.storage_problems(quick=True)
            if problems:
                raise HistoryError(f"{self.location} is corrupt: {problems[0]}")
            with db.transaction():
                db.execute("UPDATE mathperf_meta SET value = value WHERE key = 'schema_version'")

    def append(self, run: RunRecord, uid: str | None = None) -> int:
        """Record a whole run in one transaction and return its id."""
        return self.finish_run(uid or new_run_uid(), run)

    def begin_run(self, uid: str, started_at: float, environment: dict[str, str]) -> int:
        """The run's row, marked incomplete, so a run killed before its end leaves a trace."""
        with self._writing() as db:
            return rows.insert_run_row(db, uid, started_at, started_at, environment, complete=False)

    def record_case(self, uid: str, case: CaseRecord, model: ModelRecord) -> None:
        """Add one reported case (and its model, the first time) to a begun run, in its own transaction."""
        with self._writing() as db:
            run_id = self._begun(db, uid)
            if not db.execute("SELECT 1 FROM models WHERE run_id = ? AND model = ?", (run_id, model.model)):
                rows.insert_models(db, run_id, [model], first_position=rows.next_position(db, "models", run_id))
            rows.insert_case(db, run_id, rows.next_position(db, "cases", run_id), case)
            db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (time.time(), run_id))

    def record_budget(self, uid: str, budget: BudgetRecord) -> None:
        """Add one judged budget to a begun run, in its own transaction."""
        with self._writing() as db:
            run_id = self._begun(db, uid)
            rows.insert_budgets(db, run_id, rows.next_position(db, "budgets", run_id), [budget])

    def finish_run(self, uid: str, run: RunRecord, *, complete: bool = True) -> int:
        """Write the whole run in one transaction (replacing what was recorded on the way) and return its id."""
        with self._writing() as db:
            found = rows.run_row(db, uid)
            if found is None:
                run_id = rows.insert_run_row(db, uid, run.started_at, run.finished_at, run.environment, complete)
            else:
                run_id = found[0]
            rows.write_whole_run(db, run_id, run, complete)
        return run_id

    def bless(self, run_ids: Sequence[int]) -> list[RunRecord]:
        """Mark complete runs as the baseline of their card and models (``--mathperf-baseline
        blessed``); runs blessed together form the baseline, replacing those blessed before."""
        records = [self.run(run_id) for run_id in run_ids]
        with self._writing() as db:
            for run_id in run_ids:
                [(complete, hidden)] = db.execute("SELECT complete, hidden_reason FROM runs WHERE id = ?", (run_id,))
                if not complete:
                    raise HistoryError(f"{self.location}: run {run_id} is incomplete (killed mid-way) and cannot be a baseline")
                if hidden is not None:
                    raise HistoryError(f"{self.location}: run {run_id} is hidden ({hidden}); `mathperf history unhide {run_id}` first")
            [(latest,)] = db.execute("SELECT COALESCE(MAX(blessed), 0) FROM runs")
            for run_id in run_ids:  # the flag counts blessings: the newest set is the baseline
                db.execute("UPDATE runs SET blessed = ? WHERE id = ?", (int(latest) + 1, run_id))
        return records

    def blessed_runs(self, card: str, model: str) -> tuple[tuple[int, RunRecord], ...]:
        """The runs blessed together most recently that measured ``model`` on ``card``, newest first."""
        with self._open(create=False) as db:
            if db is None:
                return ()
            rows_found = [(int(row[0]), int(row[1])) for row in
                          db.execute(f"SELECT id, blessed FROM runs WHERE blessed > 0 AND {rows.SHOWN} ORDER BY blessed DESC, id DESC")]
        found: list[tuple[int, RunRecord]] = []
        chosen = 0
        for run_id, blessing in rows_found:
            if found and blessing != chosen:
                break
            record = self.run(run_id)
            if any(m.model == model and m.card == card for m in record.models) and record.cases_of(model):
                found.append((run_id, record))
                chosen = blessing
        return tuple(found)

    def hide(self, run_id: int, reason: str) -> None:
        """Take a run out of the trends, the latest run, calibration and baselines; it stays stored, with the reason."""
        if not reason.strip():
            raise HistoryError("a hidden run needs a reason (--reason), so that whoever finds it knows why")
        self.run(run_id)  # one line naming the run when there is none
        with self._writing() as db:
            db.execute("UPDATE runs SET hidden_reason = ?, hidden_at = ? WHERE id = ?", (reason.strip(), time.time(), run_id))

    def unhide(self, run_id: int) -> str | None:
        """Show a hidden run again; the reason it had, or None when it was not hidden."""
        self.run(run_id)
        with self._writing() as db:
            [(reason,)] = db.execute("SELECT hidden_reason FROM runs WHERE id = ?", (run_id,))
            db.execute("UPDATE runs SET hidden_reason = NULL, hidden_at = NULL WHERE id = ?", (run_id,))
        return reason

    def hidden_runs(self) -> list[tuple[int, float, str]]:
        """(run id, when it was hidden, why) for every hidden run, oldest first."""
        with self._open(create=False) as db:
            return [] if db is None else list(_hidden(db))

    def blessed_run_ids(self) -> list[int]:
        with self._open(create=False) as db:
            return [] if db is None else [int(row[0]) for row in db.execute("SELECT id FROM runs WHERE blessed > 0 ORDER BY id")]

    def blessed_run(self, card: str, model: str) -> tuple[int, RunRecord] | None:
        """The newest blessed run that measured ``model`` on ``card``, with its id."""
        runs = self.blessed_runs(card, model)
        return runs[0] if runs else None

    def claim_shares(self, group: str, shards: int, shares: Mapping[str, int]) -> tuple[int, dict[str, int]]:
        """The shares of a sharded gate's group: the first shard to ask records ``shares``, every
        later one gets what it recorded, so all shards split by one assignment whatever the
        history held when each started. Returns the group's shard count and shares."""
        with self._writing() as db:
            found = db.execute("SELECT shards, shares FROM run_groups WHERE run_group = ?", (group,))
            if not found:
                # two first shards at once: the primary key lets one insert, the other reads it
                db.execute(
                    "INSERT INTO run_groups (run_group, shards, shares, created_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_group) DO NOTHING",
                    (group, shards, json.dumps(dict(shares), sort_keys=True), time.time()),
                )
                found = db.execute("SELECT shards, shares FROM run_groups WHERE run_group = ?", (group,))
        return int(found[0][0]), json.loads(found[0][1])

    def group_shares(self, group: str) -> tuple[int, dict[str, int]] | None:
        """The shard count and shares a group's first shard recorded, or None for no such group."""
        with self._open(create=False) as db:
            if db is None:
                return None
            found = db.execute("SELECT shards, shares FROM run_groups WHERE run_group = ?", (group,))
        return (int(found[0][0]), json.loads(found[0][1])) if found else None

    def group_runs(self, group: str) -> list[StoredRun]:
        """Every run recorded under a sharded gate's group (complete or not), oldest first."""
        needle = json.dumps(group, ensure_ascii=False).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._open(create=False) as db:
            if db is None:
                return []
            ids = [int(row[0]) for row in db.execute(
                "SELECT id FROM runs WHERE environment LIKE ? ESCAPE '\\' ORDER BY id", (f"%{needle}%",)
            )]
        runs = [self.stored_run(run_id) for run_id in ids]
        return [run for run in runs if run.record.environment.get("run_group") == group]

    def import_run(self, stored: StoredRun) -> str:
        """Add a run from another store in one transaction: ``added``, ``replaced`` (an incomplete copy) or ``present``."""
        with self._writing() as db:
            found = rows.run_row(db, stored.uid)
            if found is not None and (found[1] or not stored.complete):
                return "present"
            run = stored.record
            if found is None:
                run_id = rows.insert_run_row(db, stored.uid, run.started_at, run.finished_at, run.environment, stored.complete)
            else:
                run_id = found[0]
            rows.write_whole_run(db, run_id, run, stored.complete)
        return "added" if found is None else "replaced"

    def _begun(self, db: Database, uid: str) -> int:
        found = rows.run_row(db, uid)
        if found is None:
            raise HistoryError(f"{self.location} has no run {uid} to add to")
        return found[0]

    # -- reading --------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunRecord:
        """One run exactly as it was appended."""
        with self._open(create=False) as db:
            if db is None:
                raise HistoryError(f"{self.location} does not exist")
            record = rows.read_run(db, run_id)
        if record is None:
            raise HistoryError(f"{self.location} has no run {run_id}")
        return record

    def stored_run(self, run_id: int) -> StoredRun:
        """A run with its uid and completeness, as ``mathperf history import`` copies it."""
        record = self.run(run_id)
        with self._open(create=False) as db:
            assert db is not None
            [(uid, complete)] = db.execute("SELECT uid, complete FROM runs WHERE id = ?", (run_id,))
        return StoredRun(run_id, uid, bool(complete), record)

    def latest_run(self) -> RunRecord | None:
        """The most recently appended complete run, or None for an empty or missing history."""
        run_id = self.latest_run_id()
        return None if run_id is None else self.run(run_id)

    def latest_run_id(self) -> int | None:
        with self._open(create=False) as db:
            if db is None:
                return None
            value = db.execute(f"SELECT MAX(id) FROM runs WHERE {rows.SHOWN}")[0][0]
        return None if value is None else int(value)

    def run_ids(self, *, include_incomplete: bool = True) -> list[int]:
        """Ids of the recorded runs, oldest first (without ``include_incomplete``: the shown ones only)."""
        where = "" if include_incomplete else f" WHERE {rows.SHOWN}"
        with self._open(create=False) as db:
            if db is None:
                return []
            return [int(row[0]) for row in db.execute(f"SELECT id FROM runs{where} ORDER BY id")]

    def incomplete_run_ids(self) -> list[int]:
        """Runs killed mid-way (or still being recorded by another process)."""
        with self._open(create=False) as db:
            if db is None:
                return []
            return [int(row[0]) for row in db.execute("SELECT id FROM runs WHERE complete = 0 ORDER BY id")]

    def summaries(self, *, include_incomplete: bool = False) -> list[RunSummary]:
        """Every complete run's summary, oldest first (with ``include_incomplete``, killed runs too)."""
        with self._open(create=False) as db:
            if db is None:
                return []
            return rows.read_summaries(db, include_incomplete=include_incomplete)

    def latest_per_card_and_model(self) -> dict[tuple[str, str], FleetEntry]:
        """For a fleet matrix: the newest complete run of every (card, model), keyed and sorted by (card, model)."""
        return latest_per_card_and_model(self.summaries())

    def integrity_check(self) -> str:
        """The store's verdict on itself: ``ok`` when sound, else the problems joined by ``; ``."""
        report = self.check()
        return "ok" if report.ok else "; ".join(report.problems)

    def check(self) -> CheckReport:
        """Schema version, runs and every problem found, without changing the store (no migration either)."""
        db = open_database(self.location, create=False)
        if db is None:
            raise HistoryError(f"{self.location} does not exist")
        try:
            with db.errors():
                return _check(db)
        finally:
            db.close()


def _check(db: Database) -> CheckReport:
    location = str(db.location)
    version = schema_version(db)
    if version is None:
        return CheckReport(location, None, 0, (), (f"{location} is empty: not a pytest-mathperf history yet",))
    problems: list[str] = []

    def count(query: str, what: str) -> int:
        """One query's count; a store too damaged to answer it is one more problem, not the end of the check."""
        try:
            with db.errors():
                return int(db.execute(query)[0][0])
        except HistoryError as error:
            problems.append(f"{what} cannot be read: {error}")
            return 0

    try:
        with db.errors():
            problems.extend(db.storage_problems(quick=False))
    except HistoryError as error:
        problems.append(f"the integrity check could not finish: {error}")
    if version > SCHEMA_VERSION:
        problems.append(f"schema {version} is newer than this pytest-mathperf reads ({SCHEMA_VERSION}): upgrade it")
        return CheckReport(location, version, 0, (), tuple(problems))
    runs = count("SELECT COUNT(*) FROM runs", "the runs")
    incomplete: tuple[int, ...] = ()
    if "complete" in db.columns("runs"):
        incomplete = tuple(int(row[0]) for row in db.execute("SELECT id FROM runs WHERE complete = 0 ORDER BY id"))
    orphans = {
        "cases without their run": "SELECT COUNT(*) FROM cases WHERE run_id NOT IN (SELECT id FROM runs)",
        "generations without their case": "SELECT COUNT(*) FROM generations WHERE case_row NOT IN (SELECT id FROM cases)",
        "models without their run": "SELECT COUNT(*) FROM models WHERE run_id NOT IN (SELECT id FROM runs)",
        "budgets without their run": "SELECT COUNT(*) FROM budgets WHERE run_id NOT IN (SELECT id FROM runs)",
    }
    if "metric_stats" in db.tables():
        orphans["statistics without their run"] = "SELECT COUNT(*) FROM metric_stats WHERE run_id NOT IN (SELECT id FROM runs)"
    for what, query in orphans.items():
        found = count(query, what.split(" ")[0])
        if found:
            problems.append(f"{found} {what}")
    return CheckReport(location, version, runs, incomplete, tuple(problems), _hidden(db))


def _hidden(db: Database) -> tuple[tuple[int, float, str], ...]:
    if "hidden_reason" not in db.columns("runs"):  # a store not yet migrated hides nothing
        return ()
    found = db.execute("SELECT id, hidden_at, hidden_reason FROM runs WHERE hidden_reason IS NOT NULL ORDER BY id")
    return tuple((int(row[0]), float(row[1]), str(row[2])) for row in found)
