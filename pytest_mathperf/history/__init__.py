"""The run history: one store of runs (an SQLite file, or PostgreSQL for a fleet of runners).

``store`` holds :class:`History`; ``database`` the two connections and where a history lives;
``schema`` the one migration path both stores share; ``rows`` the SQL; ``summaries`` what the
report reads; ``transfer`` import and side files; ``recording`` a gate session's run on its way in.
"""

from pytest_mathperf.history.database import BUSY_TIMEOUT_S, HistoryError, HistoryLocation, parse_location
from pytest_mathperf.history.schema import MIGRATIONS, SCHEMA_VERSION
from pytest_mathperf.history.store import CheckReport, History, StoredRun
from pytest_mathperf.history.summaries import (
    ALL_SUITES,
    SUMMARY_STATISTICS,
    FleetEntry,
    MetricStats,
    ModelSummary,
    RunSummary,
    accuracy_counts,
    metric_stats,
    summarise,
)

__all__ = [
    "ALL_SUITES",
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SUMMARY_STATISTICS",
    "CheckReport",
    "FleetEntry",
    "History",
    "HistoryError",
    "HistoryLocation",
    "MetricStats",
    "ModelSummary",
    "RunSummary",
    "StoredRun",
    "accuracy_counts",
    "metric_stats",
    "parse_location",
    "summarise",
]
