"""The run history: every run appended to one SQLite file, for trends and for the HTML report.

Guarantees (SPEC 2.5): each run is written in one transaction, so a run killed half way (Ctrl-C,
a crash, ``kill -9``) leaves every earlier run readable; two processes appending at once both
land (``BEGIN IMMEDIATE`` and a busy timeout make the second wait instead of failing); a corrupt
or foreign file raises :class:`HistoryError`, one line naming the file, and is never modified.

Schema versions: 1 stored the runs as they were measured; 2 adds ``metric_stats``, the
statistics of every metric per run × model × suite, computed once at write time with the same
definitions budgets use, so the report reads 1,000 runs without recomputing any percentile.
Files of an older schema are migrated on open, inside a transaction.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_mathperf.metrics import statistic
from pytest_mathperf.results import (
    BudgetRecord,
    CaseRecord,
    GenerationRecord,
    ModelRecord,
    RunRecord,
)

SCHEMA_VERSION = 2
#: Seconds a writer waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 60.0
#: Statistics kept per metric in ``metric_stats`` (and in :class:`MetricStats`).
SUMMARY_STATISTICS: tuple[str, ...] = ("p50", "p90", "p95", "p99", "mean", "min", "max")
#: The ``suite`` value of statistics taken over all of a model's cases.
ALL_SUITES = ""

_SCHEMA_1 = """
CREATE TABLE mathperf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    environment TEXT NOT NULL
);
CREATE TABLE models (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    card TEXT NOT NULL,
    device TEXT,
    dtype TEXT,
    revision TEXT,
    source TEXT,
    metrics TEXT NOT NULL,
    memory_source TEXT,
    load_error TEXT,
    details TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
CREATE TABLE cases (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    suite TEXT NOT NULL,
    case_id TEXT NOT NULL,
    nodeid TEXT NOT NULL,
    prompt TEXT NOT NULL,
    expected TEXT NOT NULL,
    tags TEXT NOT NULL,
    pass_rule TEXT NOT NULL,
    passed INTEGER NOT NULL
);
CREATE INDEX cases_by_run ON cases (run_id, position);
CREATE TABLE generations (
    case_row INTEGER NOT NULL REFERENCES cases(id),
    position INTEGER NOT NULL,
    repeat INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    extracted TEXT,
    reason TEXT NOT NULL,
    finish_reason TEXT,
    metrics TEXT NOT NULL,
    output TEXT NOT NULL,
    PRIMARY KEY (case_row, position)
);
CREATE TABLE budgets (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    model TEXT NOT NULL,
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    statistic TEXT,
    scope TEXT NOT NULL,
    suite TEXT,
    case_id TEXT,
    minimum REAL,
    maximum REAL,
    measured REAL,
    samples INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    card TEXT NOT NULL,
    nodeid TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
);
"""


class HistoryError(Exception):
    """The history file cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class MetricStats:
    """One metric's statistics over one model's generations in one run (optionally one suite)."""

    metric: str
    suite: str  # ALL_SUITES for the model as a whole
    count: int
    values: Mapping[str, float]  # statistic name → value, for SUMMARY_STATISTICS


@dataclass(frozen=True)
class ModelSummary:
    """What the trend charts need of one model in one run, without its cases."""

    model: ModelRecord
    stats: Mapping[tuple[str, str], MetricStats]  # (metric, suite) → statistics
    accuracy: Mapping[str, tuple[int, int]]  # suite (ALL_SUITES for all) → (passed cases, cases)
    budgets: tuple[BudgetRecord, ...]  # every budget of this model except per-case ones


@dataclass(frozen=True)
class RunSummary:
    """One run as the trend report sees it: environment, models and their summaries."""

    run_id: int | None  # None for a run that is not (yet) in a history
    started_at: float
    finished_at: float
    environment: Mapping[str, str]
    models: tuple[ModelSummary, ...]
    budgets_failed: int
    cases_failed: int


def metric_stats(cases: Iterable[CaseRecord]) -> dict[tuple[str, str], MetricStats]:
    """Statistics of every per-generation metric, per model-wide and per suite (NaN ignored, as budgets do)."""
    samples: dict[tuple[str, str], list[float]] = {}
    for case in cases:
        for generation in case.generations:
            for metric, value in generation.metrics.items():
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                samples.setdefault((metric, ALL_SUITES), []).append(float(value))
                samples.setdefault((metric, case.suite), []).append(float(value))
    return {
        key: MetricStats(key[0], key[1], len(values), {name: statistic(values, name) for name in SUMMARY_STATISTICS})
        for key, values in samples.items()
    }


def accuracy_counts(cases: Iterable[CaseRecord]) -> dict[str, tuple[int, int]]:
    """Passed cases and cases, over all suites (key ALL_SUITES) and per suite."""
    counts: dict[str, list[int]] = {}
    for case in cases:
        for key in (ALL_SUITES, case.suite):
            entry = counts.setdefault(key, [0, 0])
            entry[0] += int(case.passed)
            entry[1] += 1
    return {key: (passed, total) for key, (passed, total) in counts.items()}


def summarise(run: RunRecord, run_id: int | None = None) -> RunSummary:
    """A run's summary computed from the record itself (for a run not read back from a history)."""
    models = []
    for model in run.models:
        cases = run.cases_of(model.model)
        budgets = tuple(b for b in run.budgets if b.model == model.model and b.scope != "case")
        models.append(ModelSummary(model, metric_stats(cases), accuracy_counts(cases), budgets))
    return RunSummary(
        run_id=run_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        environment=dict(run.environment),
        models=tuple(models),
        budgets_failed=sum(1 for b in run.budgets if not b.passed),
        cases_failed=sum(1 for c in run.cases if not c.passed),
    )


class History:
    """A history file. Opens lazily; creates its parent folders and the file on first write."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None

    # -- opening, schema and errors -------------------------------------------------------------

    def _connect(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection, checked and migrated; None when the file does not exist and create is False."""
        if self._connection is not None:
            return self._connection
        if not self.path.exists():
            if not create:
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{self.path}: cannot create its folder: {exc.strerror or exc}") from exc
        elif self.path.is_dir():
            raise HistoryError(f"{self.path} is a folder, not a pytest-mathperf history file")
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path} cannot be opened: {exc}") from exc
        try:
            with self._translated_errors():
                connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                self._prepare(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        """Check that the file is ours and of a schema we read; create or migrate it if needed."""
        version = self._schema_version(connection)
        if version is None:
            # An empty database (a new or zero-byte file): WAL lets readers (a report) run while a
            # run writes. Switching the journal mode is done outside a transaction, and only here,
            # so a foreign file is never touched.
            connection.execute("PRAGMA journal_mode = WAL")
        if version == SCHEMA_VERSION:
            return
        if version is not None and version > SCHEMA_VERSION:
            raise HistoryError(
                f"{self.path} was written by a newer pytest-mathperf (schema {version} > {SCHEMA_VERSION}); upgrade pytest-mathperf"
            )
        with self._transaction(connection):
            # Another process may have created or migrated the file since we looked.
            version = self._schema_version(connection)
            if version is None:
                for statement in _statements(_SCHEMA_1):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO mathperf_meta (key, value) VALUES ('schema_version', '1'), ('created_by', ?)",
                    (f"pytest-mathperf {_plugin_version()}",),
                )
                version = 1
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](connection)
                version += 1
                connection.execute("UPDATE mathperf_meta SET value = ? WHERE key = 'schema_version'", (str(version),))

    def _schema_version(self, connection: sqlite3.Connection) -> int | None:
        """The file's schema version; None for an empty database; HistoryError for a foreign one."""
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        if "mathperf_meta" not in tables:
            raise HistoryError(f"{self.path} is not a pytest-mathperf history (no mathperf_meta table)")
        row = connection.execute("SELECT value FROM mathperf_meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise HistoryError(f"{self.path} is not a pytest-mathperf history (no schema_version in mathperf_meta)")
        return int(row[0])

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        """Turn SQLite's errors into one-line HistoryErrors that name the file."""
        try:
            yield
        except HistoryError:
            raise
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if "locked" in message or "busy" in message:
                raise HistoryError(f"{self.path} is locked by another process: {message}") from exc
            raise HistoryError(f"{self.path} is corrupt or unreadable: {message}") from exc
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not a database" in message:
                raise HistoryError(f"{self.path} is corrupt or not an SQLite file: {message}") from exc
            raise HistoryError(f"{self.path} is corrupt: {message}") from exc

    @contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[None]:
        """One write transaction; rolled back on any exception, KeyboardInterrupt included."""
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    # -- writing --------------------------------------------------------------------------------

    def append(self, run: RunRecord) -> int:
        """Record a whole run in one transaction and return its id."""
        with self._translated_errors():
            connection = self._connect(create=True)
            assert connection is not None
            with self._transaction(connection):
                run_id = _insert_run(connection, run)
        return run_id

    # -- reading --------------------------------------------------------------------------------

    def run(self, run_id: int) -> RunRecord:
        """One run exactly as it was appended."""
        with self._translated_errors():
            connection = self._connect(create=False)
            if connection is None:
                raise HistoryError(f"{self.path} does not exist")
            record = _read_run(connection, run_id)
        if record is None:
            raise HistoryError(f"{self.path} has no run {run_id}")
        return record

    def latest_run(self) -> RunRecord | None:
        """The most recently appended run, or None for an empty or missing history."""
        run_id = self.latest_run_id()
        return None if run_id is None else self.run(run_id)

    def latest_run_id(self) -> int | None:
        with self._translated_errors():
            connection = self._connect(create=False)
            if connection is None:
                return None
            row = connection.execute("SELECT MAX(id) FROM runs").fetchone()
        return None if row[0] is None else int(row[0])

    def run_ids(self) -> list[int]:
        """Ids of every recorded run, oldest first."""
        with self._translated_errors():
            connection = self._connect(create=False)
            if connection is None:
                return []
            return [int(row[0]) for row in connection.execute("SELECT id FROM runs ORDER BY id")]

    def summaries(self) -> list[RunSummary]:
        """Every run's summary, oldest first, read from a few grouped queries (no per-case rows in Python)."""
        with self._translated_errors():
            connection = self._connect(create=False)
            if connection is None:
                return []
            return _read_summaries(connection)

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file (``ok`` when sound)."""
        with self._translated_errors():
            connection = self._connect(create=False)
            if connection is None:
                raise HistoryError(f"{self.path} does not exist")
            return "; ".join(row[0] for row in connection.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# -- migrations -----------------------------------------------------------------------------------


def _migrate_1_to_2(connection: sqlite3.Connection) -> None:
    """Add ``metric_stats`` and fill it from the generations already recorded."""
    connection.execute(
        """CREATE TABLE metric_stats (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            model TEXT NOT NULL,
            suite TEXT NOT NULL,
            metric TEXT NOT NULL,
            count INTEGER NOT NULL,
            p50 REAL, p90 REAL, p95 REAL, p99 REAL, mean REAL, min REAL, max REAL,
            PRIMARY KEY (run_id, model, suite, metric)
        )"""
    )
    for (run_id,) in connection.execute("SELECT id FROM runs ORDER BY id").fetchall():
        cases = _read_cases(connection, run_id)
        for model in dict.fromkeys(case.model for case in cases):
            _insert_stats(connection, run_id, model, [case for case in cases if case.model == model])


#: MIGRATIONS[n] upgrades a file from schema n to n + 1, inside the caller's transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


# -- rows -----------------------------------------------------------------------------------------


def _insert_run(connection: sqlite3.Connection, run: RunRecord) -> int:
    cursor = connection.execute(
        "INSERT INTO runs (started_at, finished_at, environment) VALUES (?, ?, ?)",
        (run.started_at, run.finished_at, _json(run.environment)),
    )
    run_id = int(cursor.lastrowid or 0)
    connection.executemany(
        "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id, position, m.model, m.backend, m.card, m.device, m.dtype, m.revision, m.source,
                _json(m.metrics), m.memory_source, m.load_error, _json(m.details),
            )
            for position, m in enumerate(run.models)
        ],
    )
    for position, case in enumerate(run.cases):
        cursor = connection.execute(
            "INSERT INTO cases (run_id, position, model, suite, case_id, nodeid, prompt, expected, tags, pass_rule, passed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id, position, case.model, case.suite, case.case, case.nodeid, case.prompt, case.expected,
                _json(list(case.tags)), case.pass_rule, int(case.passed),
            ),
        )
        case_row = cursor.lastrowid
        connection.executemany(
            "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    case_row, index, g.repeat, g.seed, g.status, g.extracted, g.reason, g.finish_reason,
                    _json(g.metrics), g.output,
                )
                for index, g in enumerate(case.generations)
            ],
        )
    connection.executemany(
        "INSERT INTO budgets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id, position, b.model, b.name, b.metric, b.statistic, b.scope, b.suite, b.case,
                b.minimum, b.maximum, b.measured, b.samples, int(b.passed), b.card, b.nodeid,
            )
            for position, b in enumerate(run.budgets)
        ],
    )
    models = dict.fromkeys([m.model for m in run.models] + [c.model for c in run.cases])
    for model in models:
        _insert_stats(connection, run_id, model, run.cases_of(model))
    return run_id


def _insert_stats(connection: sqlite3.Connection, run_id: int, model: str, cases: Sequence[CaseRecord]) -> None:
    connection.executemany(
        "INSERT INTO metric_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, model, stats.suite, stats.metric, stats.count, *(stats.values[name] for name in SUMMARY_STATISTICS))
            for stats in metric_stats(cases).values()
        ],
    )


def _read_run(connection: sqlite3.Connection, run_id: int) -> RunRecord | None:
    row = connection.execute("SELECT started_at, finished_at, environment FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    models = tuple(
        _model_from_row(row)
        for row in connection.execute(
            f"SELECT {_MODEL_COLUMNS} FROM models WHERE run_id = ? ORDER BY position", (run_id,)
        )
    )
    budgets = tuple(
        _budget_from_row(row)
        for row in connection.execute(
            f"SELECT {_BUDGET_COLUMNS} FROM budgets WHERE run_id = ? ORDER BY position", (run_id,)
        )
    )
    return RunRecord(
        started_at=row[0],
        finished_at=row[1],
        environment=json.loads(row[2]),
        models=models,
        cases=tuple(_read_cases(connection, run_id)),
        budgets=budgets,
    )


def _read_cases(connection: sqlite3.Connection, run_id: int) -> list[CaseRecord]:
    generations: dict[int, list[GenerationRecord]] = {}
    for row in connection.execute(
        "SELECT g.case_row, g.repeat, g.seed, g.status, g.extracted, g.reason, g.finish_reason, g.metrics, g.output"
        " FROM generations g JOIN cases c ON c.id = g.case_row WHERE c.run_id = ? ORDER BY g.case_row, g.position",
        (run_id,),
    ):
        generations.setdefault(row[0], []).append(
            GenerationRecord(
                repeat=row[1], seed=row[2], status=row[3], extracted=row[4], reason=row[5],
                finish_reason=row[6], metrics=json.loads(row[7]), output=row[8],
            )
        )
    return [
        CaseRecord(
            model=row[1], suite=row[2], case=row[3], nodeid=row[4], prompt=row[5], expected=row[6],
            tags=tuple(json.loads(row[7])), pass_rule=row[8], passed=bool(row[9]),
            generations=tuple(generations.get(row[0], ())),
        )
        for row in connection.execute(
            "SELECT id, model, suite, case_id, nodeid, prompt, expected, tags, pass_rule, passed"
            " FROM cases WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
    ]


_MODEL_COLUMNS = "model, backend, card, device, dtype, revision, source, metrics, memory_source, load_error, details"
_BUDGET_COLUMNS = (
    "model, name, metric, statistic, scope, suite, case_id, minimum, maximum, measured, samples, passed, card, nodeid"
)


def _model_from_row(row: Sequence[Any]) -> ModelRecord:
    return ModelRecord(
        model=row[0], backend=row[1], card=row[2], device=row[3], dtype=row[4], revision=row[5],
        source=row[6], metrics=json.loads(row[7]), memory_source=row[8], load_error=row[9],
        details=json.loads(row[10]),
    )


def _budget_from_row(row: Sequence[Any]) -> BudgetRecord:
    return BudgetRecord(
        model=row[0], name=row[1], metric=row[2], statistic=row[3], scope=row[4], suite=row[5],
        case=row[6], minimum=row[7], maximum=row[8], measured=row[9], samples=row[10],
        passed=bool(row[11]), card=row[12], nodeid=row[13],
    )


def _read_summaries(connection: sqlite3.Connection) -> list[RunSummary]:
    runs = connection.execute("SELECT id, started_at, finished_at, environment FROM runs ORDER BY id").fetchall()
    models: dict[int, list[ModelRecord]] = {}
    for row in connection.execute(f"SELECT run_id, {_MODEL_COLUMNS} FROM models ORDER BY run_id, position"):
        models.setdefault(row[0], []).append(_model_from_row(row[1:]))
    stats: dict[tuple[int, str], dict[tuple[str, str], MetricStats]] = {}
    for row in connection.execute(
        "SELECT run_id, model, suite, metric, count, p50, p90, p95, p99, mean, min, max FROM metric_stats"
    ):
        stats.setdefault((row[0], row[1]), {})[(row[3], row[2])] = MetricStats(
            row[3], row[2], row[4], dict(zip(SUMMARY_STATISTICS, row[5:]))
        )
    accuracy: dict[tuple[int, str], dict[str, tuple[int, int]]] = {}
    cases_failed: dict[int, int] = {}
    for run_id, model, suite, passed, total in connection.execute(
        "SELECT run_id, model, suite, SUM(passed), COUNT(*) FROM cases GROUP BY run_id, model, suite"
    ):
        per_model = accuracy.setdefault((run_id, model), {})
        per_model[suite] = (int(passed), int(total))
        overall = per_model.get(ALL_SUITES, (0, 0))
        per_model[ALL_SUITES] = (overall[0] + int(passed), overall[1] + int(total))
        cases_failed[run_id] = cases_failed.get(run_id, 0) + int(total) - int(passed)
    budgets: dict[tuple[int, str], list[BudgetRecord]] = {}
    for row in connection.execute(
        f"SELECT run_id, {_BUDGET_COLUMNS} FROM budgets WHERE scope != 'case' ORDER BY run_id, position"
    ):
        budgets.setdefault((row[0], row[1]), []).append(_budget_from_row(row[1:]))
    budgets_failed = dict(
        connection.execute("SELECT run_id, COUNT(*) FROM budgets WHERE passed = 0 GROUP BY run_id").fetchall()
    )
    return [
        RunSummary(
            run_id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            environment=json.loads(environment),
            models=tuple(
                ModelSummary(
                    model=model,
                    stats=stats.get((run_id, model.model), {}),
                    accuracy=accuracy.get((run_id, model.model), {}),
                    budgets=tuple(budgets.get((run_id, model.model), ())),
                )
                for model in models.get(run_id, ())
            ),
            budgets_failed=int(budgets_failed.get(run_id, 0)),
            cases_failed=cases_failed.get(run_id, 0),
        )
        for run_id, started_at, finished_at, environment in runs
    ]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def _plugin_version() -> str:
    from pytest_mathperf import __version__

    return __version__
