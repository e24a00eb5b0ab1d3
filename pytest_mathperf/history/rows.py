"""Records to rows and back, in SQL that both SQLite and PostgreSQL run unchanged."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from pytest_mathperf.history.database import Database
from pytest_mathperf.history.summaries import (
    ALL_SUITES,
    SUMMARY_STATISTICS,
    MetricStats,
    ModelSummary,
    RunSummary,
    metric_stats,
)
from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord, GenerationRecord, ModelRecord, RunRecord

MODEL_COLUMNS = "model, backend, card, device, dtype, revision, source, metrics, memory_source, load_error, details"
BUDGET_COLUMNS = (
    "model, name, metric, statistic, scope, suite, case_id, minimum, maximum, measured, samples, passed, card, nodeid,"
    " status, reason"
)


# -- writing --------------------------------------------------------------------------------------


#: Runs that trends, the latest run, calibration and baselines read: complete, and not hidden.
SHOWN = "complete = 1 AND hidden_reason IS NULL"

def insert_run_row(db: Database, uid: str, started_at: float, finished_at: float, environment: Any, complete: bool) -> int:
    return db.insert(
        "INSERT INTO runs (started_at, finished_at, environment, uid, complete) VALUES (?, ?, ?, ?, ?)",
        (started_at, finished_at, _json(environment), uid, int(complete)),
    )


def run_row(db: Database, uid: str) -> tuple[int, bool] | None:
    """(id, complete) of the run with this uid, or None."""
    rows = db.execute("SELECT id, complete FROM runs WHERE uid = ?", (uid,))
    return (int(rows[0][0]), bool(rows[0][1])) if rows else None


def write_whole_run(db: Database, run_id: int, run: RunRecord, complete: bool) -> None:
    """Replace whatever the run row holds with the whole record (a run's final write, or an import)."""
    db.execute(
        "UPDATE runs SET started_at = ?, finished_at = ?, environment = ?, complete = ? WHERE id = ?",
        (run.started_at, run.finished_at, _json(run.environment), int(complete), run_id),
    )
    delete_children(db, run_id)
    insert_models(db, run_id, run.models)
    for position, case in enumerate(run.cases):
        insert_case(db, run_id, position, case)
    insert_budgets(db, run_id, 0, run.budgets)
    insert_comparisons(db, run_id, run.comparisons)
    models = dict.fromkeys([m.model for m in run.models] + [c.model for c in run.cases])
    for model in models:
        insert_stats(db, run_id, model, run.cases_of(model))


def delete_children(db: Database, run_id: int) -> None:
    db.execute("DELETE FROM generations WHERE case_row IN (SELECT id FROM cases WHERE run_id = ?)", (run_id,))
    for table in ("cases", "models", "budgets", "comparisons", "metric_stats"):
        db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))


def insert_models(db: Database, run_id: int, models: Sequence[ModelRecord], first_position: int = 0) -> None:
    db.executemany(
        "INSERT INTO models (run_id, position, " + MODEL_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id, position, m.model, m.backend, m.card, m.device, m.dtype, m.revision, m.source,
                _json(m.metrics), m.memory_source, m.load_error, _json(m.details),
            )
            for position, m in enumerate(models, start=first_position)
        ],
    )


def insert_case(db: Database, run_id: int, position: int, case: CaseRecord) -> None:
    case_row = db.insert(
        "INSERT INTO cases (run_id, position, model, suite, case_id, nodeid, prompt, expected, tags, pass_rule, passed)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id, position, case.model, case.suite, case.case, case.nodeid, case.prompt, case.expected,
            _json(list(case.tags)), case.pass_rule, int(case.passed),
        ),
    )
    db.executemany(
        "INSERT INTO generations (case_row, position, repeat, seed, status, extracted, reason, finish_reason, metrics, output, facts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                case_row, index, g.repeat, g.seed, g.status, g.extracted, g.reason, g.finish_reason,
                _json(g.metrics), g.output, _json(g.facts),
            )
            for index, g in enumerate(case.generations)
        ],
    )


def insert_budgets(db: Database, run_id: int, first_position: int, budgets: Sequence[BudgetRecord]) -> None:
    db.executemany(
        "INSERT INTO budgets (run_id, position, " + BUDGET_COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                run_id, position, b.model, b.name, b.metric, b.statistic, b.scope, b.suite, b.case,
                b.minimum, b.maximum, b.measured, b.samples, int(b.passed), b.card, b.nodeid, b.status, b.reason,
            )
            for position, b in enumerate(budgets, start=first_position)
        ],
    )


def insert_comparisons(db: Database, run_id: int, comparisons: Sequence[ComparisonRecord]) -> None:
    db.executemany(
        "INSERT INTO comparisons (run_id, position, model, record) VALUES (?, ?, ?, ?)",
        [(run_id, position, c.model, _json(c.to_dict())) for position, c in enumerate(comparisons)],
    )


def insert_stats(db: Database, run_id: int, model: str, cases: Sequence[CaseRecord]) -> None:
    db.executemany(
        "INSERT INTO metric_stats (run_id, model, suite, metric, count, p50, p90, p95, p99, mean, min, max)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (run_id, model, stats.suite, stats.metric, stats.count, *(stats.values[name] for name in SUMMARY_STATISTICS))
            for stats in metric_stats(cases).values()
        ],
    )


def next_position(db: Database, table: str, run_id: int) -> int:
    rows = db.execute(f"SELECT COALESCE(MAX(position) + 1, 0) FROM {table} WHERE run_id = ?", (run_id,))
    return int(rows[0][0])


# -- reading --------------------------------------------------------------------------------------


def read_run(db: Database, run_id: int) -> RunRecord | None:
    rows = db.execute("SELECT started_at, finished_at, environment FROM runs WHERE id = ?", (run_id,))
    if not rows:
        return None
    started_at, finished_at, environment = rows[0]
    models = tuple(
        model_from_row(row)
        for row in db.execute(f"SELECT {MODEL_COLUMNS} FROM models WHERE run_id = ? ORDER BY position", (run_id,))
    )
    budgets = tuple(
        budget_from_row(row)
        for row in db.execute(f"SELECT {BUDGET_COLUMNS} FROM budgets WHERE run_id = ? ORDER BY position", (run_id,))
    )
    comparisons = tuple(
        ComparisonRecord.from_dict(json.loads(row[0]))
        for row in db.execute("SELECT record FROM comparisons WHERE run_id = ? ORDER BY position", (run_id,))
    )
    return RunRecord(
        started_at=started_at,
        finished_at=finished_at,
        environment=json.loads(environment),
        models=models,
        cases=tuple(read_cases(db, run_id)),
        budgets=budgets,
        comparisons=comparisons,
    )


def read_cases(db: Database, run_id: int, *, facts: bool = True) -> list[CaseRecord]:
    """A run's cases; ``facts=False`` for a migration from before schema 4 had the column."""
    generations: dict[int, list[GenerationRecord]] = {}
    facts_column = "g.facts" if facts else "'{}'"
    for row in db.execute(
        "SELECT g.case_row, g.repeat, g.seed, g.status, g.extracted, g.reason, g.finish_reason, g.metrics, g.output, "
        + facts_column
        + " FROM generations g JOIN cases c ON c.id = g.case_row WHERE c.run_id = ? ORDER BY g.case_row, g.position",
        (run_id,),
    ):
        generations.setdefault(row[0], []).append(
            GenerationRecord(
                repeat=row[1], seed=row[2], status=row[3], extracted=row[4], reason=row[5],
                finish_reason=row[6], metrics=json.loads(row[7]), output=row[8], facts=json.loads(row[9]),
            )
        )
    return [
        CaseRecord(
            model=row[1], suite=row[2], case=row[3], nodeid=row[4], prompt=row[5], expected=row[6],
            tags=tuple(json.loads(row[7])), pass_rule=row[8], passed=bool(row[9]),
            generations=tuple(generations.get(row[0], ())),
        )
        for row in db.execute(
            "SELECT id, model, suite, case_id, nodeid, prompt, expected, tags, pass_rule, passed"
            " FROM cases WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
    ]


def model_from_row(row: Sequence[Any]) -> ModelRecord:
    return ModelRecord(
        model=row[0], backend=row[1], card=row[2], device=row[3], dtype=row[4], revision=row[5],
        source=row[6], metrics=json.loads(row[7]), memory_source=row[8], load_error=row[9],
        details=json.loads(row[10]),
    )


def budget_from_row(row: Sequence[Any]) -> BudgetRecord:
    return BudgetRecord(
        model=row[0], name=row[1], metric=row[2], statistic=row[3], scope=row[4], suite=row[5],
        case=row[6], minimum=row[7], maximum=row[8], measured=row[9], samples=int(row[10]),
        passed=bool(row[11]), card=row[12], nodeid=row[13], status=row[14], reason=row[15],
    )


def read_summaries(db: Database, run_ids: Collection[int] | None = None, include_incomplete: bool = False) -> list[RunSummary]:
    """Run summaries, oldest first, read from a few grouped queries (no per-case rows in Python).

    ``run_ids`` narrows to those runs (the grouped queries still scan the tables once each).
    """
    where = "" if include_incomplete else f" WHERE {SHOWN}"
    runs = [
        row
        for row in db.execute(f"SELECT id, started_at, finished_at, environment, uid, complete, {_blessed(db)} FROM runs{where} ORDER BY id")
        if run_ids is None or row[0] in run_ids
    ]
    wanted = {row[0] for row in runs}
    models: dict[int, list[ModelRecord]] = {}
    for row in db.execute(f"SELECT run_id, {MODEL_COLUMNS} FROM models ORDER BY run_id, position"):
        if row[0] in wanted:
            models.setdefault(row[0], []).append(model_from_row(row[1:]))
    stats: dict[tuple[int, str], dict[tuple[str, str], MetricStats]] = {}
    for row in db.execute(
        "SELECT run_id, model, suite, metric, count, p50, p90, p95, p99, mean, min, max FROM metric_stats"
    ):
        if row[0] in wanted:
            stats.setdefault((row[0], row[1]), {})[(row[3], row[2])] = MetricStats(
                row[3], row[2], int(row[4]), dict(zip(SUMMARY_STATISTICS, row[5:]))
            )
    accuracy: dict[tuple[int, str], dict[str, tuple[int, int]]] = {}
    cases_failed: dict[int, int] = {}
    for run_id, model, suite, passed, total in db.execute(
        "SELECT run_id, model, suite, SUM(passed), COUNT(*) FROM cases GROUP BY run_id, model, suite"
    ):
        if run_id not in wanted:
            continue
        per_model = accuracy.setdefault((run_id, model), {})
        per_model[suite] = (int(passed), int(total))
        overall = per_model.get(ALL_SUITES, (0, 0))
        per_model[ALL_SUITES] = (overall[0] + int(passed), overall[1] + int(total))
        cases_failed[run_id] = cases_failed.get(run_id, 0) + int(total) - int(passed)
    budgets: dict[tuple[int, str], list[BudgetRecord]] = {}
    for row in db.execute(f"SELECT run_id, {BUDGET_COLUMNS} FROM budgets WHERE scope != 'case' ORDER BY run_id, position"):
        if row[0] in wanted:
            budgets.setdefault((row[0], row[1]), []).append(budget_from_row(row[1:]))
    comparisons: dict[tuple[int, str], list[tuple[str, str]]] = {}
    if "comparisons" in db.tables():
        for run_id, model, record in db.execute("SELECT run_id, model, record FROM comparisons ORDER BY run_id, position"):
            if run_id in wanted:
                found = json.loads(record)
                comparisons.setdefault((run_id, model), []).append((found["name"], found["verdict"]))
    budgets_failed = {
        run_id: int(count)
        for run_id, count in db.execute("SELECT run_id, COUNT(*) FROM budgets WHERE passed = 0 AND status != 'inconclusive' GROUP BY run_id")
    }
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
                    comparisons=tuple(comparisons.get((run_id, model.model), ())),
                )
                for model in models.get(run_id, ())
            ),
            budgets_failed=budgets_failed.get(run_id, 0),
            cases_failed=cases_failed.get(run_id, 0),
            uid=uid,
            complete=bool(complete),
            blessed=bool(blessed),
        )
        for run_id, started_at, finished_at, environment, uid, complete, blessed in runs
    ]


def _blessed(db: Database) -> str:
    """The blessed column, or a constant on a store older than it (read-only commands do not migrate)."""
    return "blessed" if "blessed" in db.columns("runs") else "0"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
