"""The history's schema and its one migration path, shared by SQLite and PostgreSQL.

Every store, new or old, walks the same steps: a new one is created at schema 1 and migrated
up like an old file, so a migration is never tested on one dialect only. The SQL is plain enough
for both; the auto-increment column and the float type come from the dialect. Each step runs
inside the caller's transaction, so a store is either at the old version or at the new one.

Schema versions: 1 stored the runs as they were measured; 2 adds ``metric_stats``, the
statistics of every metric per run × model × suite, computed once at write time, so the report
reads 1,000 runs without recomputing any percentile; 3 adds ``runs.uid``, a run's identity
across stores (so importing a history twice adds nothing), and ``runs.complete`` (0 while a run
is being recorded, or for a run killed mid-way); 4 adds ``generations.facts`` (where each token
count came from, retries), ``budgets.status``/``reason`` (a busy host's inconclusive verdicts),
``comparisons`` (candidate against baseline, one JSON record each) and ``runs.blessed`` (the run
``mathperf bless`` marked as the baseline for its card and models); 5 adds ``run_groups``, the
shares of a sharded gate's group (which shard runs which case), claimed once by its first shard; 6 adds ``runs.hidden_reason`` and ``runs.hidden_at``
(a run ``mathperf history hide`` took out of the trends, with the reason given).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pytest_mathperf.history.database import Database, HistoryError, SQLiteDatabase

SCHEMA_VERSION = 6

_SCHEMA_1 = """
CREATE TABLE mathperf_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id {id},
    started_at {float} NOT NULL,
    finished_at {float} NOT NULL,
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
    id {id},
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
    minimum {float},
    maximum {float},
    measured {float},
    samples INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    card TEXT NOT NULL,
    nodeid TEXT NOT NULL,
    PRIMARY KEY (run_id, position)
)
"""


def schema_version(db: Database) -> int | None:
    """The store's schema version; None for an empty database; HistoryError for a foreign one."""
    tables = db.tables()
    if not tables:
        return None
    if "mathperf_meta" not in tables:
        raise HistoryError(f"{db.location} is not a pytest-mathperf history (no mathperf_meta table)")
    rows = db.execute("SELECT value FROM mathperf_meta WHERE key = 'schema_version'")
    if not rows or not str(rows[0][0]).isdigit():
        raise HistoryError(f"{db.location} is not a pytest-mathperf history (no schema_version in mathperf_meta)")
    return int(rows[0][0])


def prepare(db: Database) -> None:
    """Check that the store is ours and of a schema we read; create or migrate it if needed."""
    version = schema_version(db)
    if version == SCHEMA_VERSION:
        return
    if version is not None and version > SCHEMA_VERSION:
        raise HistoryError(
            f"{db.location} was written by a newer pytest-mathperf (schema {version} > {SCHEMA_VERSION}); "
            "upgrade pytest-mathperf"
        )
    if version is None and isinstance(db, SQLiteDatabase):
        # Switching the journal mode is done outside a transaction, and only on an empty
        # database, so a foreign file is never touched.
        db.enable_wal()
    with db.transaction():
        db.lock_schema()
        # Another process may have created or migrated the store since we looked.
        version = schema_version(db)
        if version is None:
            for statement in _SCHEMA_1.format(id=db.ID_COLUMN, float=db.FLOAT_COLUMN).split(";"):
                db.execute(statement)
            db.execute(
                "INSERT INTO mathperf_meta (key, value) VALUES ('schema_version', '1'), ('created_by', ?)",
                (f"pytest-mathperf {_plugin_version()}",),
            )
            version = 1
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](db)
            version += 1
            db.execute("UPDATE mathperf_meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def _migrate_1_to_2(db: Database) -> None:
    """Add ``metric_stats`` and fill it from the generations already recorded."""
    from pytest_mathperf.history.rows import insert_stats, read_cases

    db.execute(
        f"""CREATE TABLE metric_stats (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            model TEXT NOT NULL,
            suite TEXT NOT NULL,
            metric TEXT NOT NULL,
            count INTEGER NOT NULL,
            p50 {db.FLOAT_COLUMN}, p90 {db.FLOAT_COLUMN}, p95 {db.FLOAT_COLUMN}, p99 {db.FLOAT_COLUMN},
            mean {db.FLOAT_COLUMN}, min {db.FLOAT_COLUMN}, max {db.FLOAT_COLUMN},
            PRIMARY KEY (run_id, model, suite, metric)
        )"""
    )
    for (run_id,) in db.execute("SELECT id FROM runs ORDER BY id"):
        cases = read_cases(db, run_id, facts=False)
        for model in dict.fromkeys(case.model for case in cases):
            insert_stats(db, run_id, model, [case for case in cases if case.model == model])


def _migrate_2_to_3(db: Database) -> None:
    """Add ``runs.uid`` (derived from what each old run recorded) and ``runs.complete`` (old runs are)."""
    db.execute("ALTER TABLE runs ADD COLUMN uid TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN complete INTEGER NOT NULL DEFAULT 1")
    for run_id, started_at, finished_at, environment in db.execute(
        "SELECT id, started_at, finished_at, environment FROM runs ORDER BY id"
    ):
        db.execute("UPDATE runs SET uid = ? WHERE id = ?", (derived_uid(run_id, started_at, finished_at, environment), run_id))
    db.execute("CREATE UNIQUE INDEX runs_by_uid ON runs (uid)")


def _migrate_3_to_4(db: Database) -> None:
    """Add generation facts, budget status and reason, comparisons, and the blessed flag; old rows keep defaults."""
    db.execute("ALTER TABLE generations ADD COLUMN facts TEXT NOT NULL DEFAULT '{}'")
    db.execute("ALTER TABLE budgets ADD COLUMN status TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE budgets ADD COLUMN reason TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN blessed INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """CREATE TABLE comparisons (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            position INTEGER NOT NULL,
            model TEXT NOT NULL,
            record TEXT NOT NULL,
            PRIMARY KEY (run_id, position)
        )"""
    )


def _migrate_4_to_5(db: Database) -> None:
    """Add ``run_groups``: one row per sharded gate, holding the shares every shard of it runs."""
    db.execute(
        f"""CREATE TABLE run_groups (
            run_group TEXT PRIMARY KEY,
            shards INTEGER NOT NULL,
            shares TEXT NOT NULL,
            created_at {db.FLOAT_COLUMN} NOT NULL
        )"""
    )


def _migrate_5_to_6(db: Database) -> None:
    """Add the reason and time a run was hidden from the trends; every old run stays shown."""
    db.execute("ALTER TABLE runs ADD COLUMN hidden_reason TEXT")
    db.execute(f"ALTER TABLE runs ADD COLUMN hidden_at {db.FLOAT_COLUMN}")


def derived_uid(run_id: int, started_at: float, finished_at: float, environment: str) -> str:
    """A stable uid for a run recorded before runs had one: the same file migrated twice gives the same uids."""
    text = f"{run_id}|{started_at!r}|{finished_at!r}|{environment}"
    return "v2-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


#: MIGRATIONS[n] upgrades a store from schema n to n + 1, inside the caller's transaction.
MIGRATIONS: dict[int, Callable[[Database], None]] = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5, 5: _migrate_5_to_6}


def _plugin_version() -> str:
    from pytest_mathperf import __version__

    return __version__
