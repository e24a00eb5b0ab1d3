"""The gate's session state: what the user chose and what the run has measured so far."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_mathperf.judge import BudgetPlan

if TYPE_CHECKING:
    from pytest_mathperf.answer_pass import PassSettings
    from pytest_mathperf.history import HistoryLocation
    from pytest_mathperf.outputs.view import RunView
    from pytest_mathperf.results import BudgetRecord, CaseRecord, ComparisonRecord, ModelRecord, RunRecord
    from pytest_mathperf.runner import Runner
    from pytest_mathperf.sharding import Shard
    from pytest_mathperf.thresholds import Thresholds


@dataclass
class GateState:
    """Session state of the gate, kept in ``config.stash``."""

    settings: Settings
    runner: Runner
    thresholds: Thresholds | None
    plan: BudgetPlan = field(default_factory=BudgetPlan)  # made once, after selection
    xdist_workers: int = 0
    suite_fingerprints: dict[str, tuple[str, int]] = field(default_factory=dict)  # suite → (content hash, cases)
    suite_paths: dict[str, Path] = field(default_factory=dict)  # suite name → the file that defines it
    started_at: float = field(default_factory=time.time)
    cases: dict[str, CaseRecord] = field(default_factory=dict)  # nodeid → record (controller side)
    budget_records: dict[str, BudgetRecord] = field(default_factory=dict)
    unjudged_budgets: dict[str, dict[str, str]] = field(default_factory=dict)  # node id → model, name, why not
    comparisons: dict[str, ComparisonRecord] = field(default_factory=dict)
    blessed: dict[str, tuple[tuple[int, RunRecord], ...]] = field(default_factory=dict)  # model → its blessed runs, newest first
    models: dict[str, ModelRecord] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # shown in the terminal summary
    outcomes: dict[str, str] = field(default_factory=dict)  # gate item's node id → passed | failed | skipped (controller side)
    collection_errors: int = 0
    gate_failures: list[str] = field(default_factory=list)  # why the session failed beyond its items ("no budget judged m")
    added_items: int = 0  # budget and comparison items made after selection
    view: RunView | None = None  # the run's verdicts, made once at the end of the session

    def note_outcome(self, report: pytest.TestReport) -> None:
        """A gate item's outcome over its phases: a failure in any phase fails it; an xfail counts as skipped."""
        if report.when != "call" and report.passed:
            return
        outcome = "skipped" if hasattr(report, "wasxfail") and report.skipped else report.outcome
        if self.outcomes.get(report.nodeid) != "failed":
            self.outcomes[report.nodeid] = outcome
    shard: Shard | None = None  # this process's shard of a sharded gate
    share: frozenset[str] | None = None  # the cases ("suite::case") a shard or a group's judge runs


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    backend: str
    endpoint: str | None
    device: str
    dtype: str
    thresholds: Path
    thresholds_explicit: bool
    suites: tuple[Path, ...]
    repeats: int | None
    warmup: int
    warmup_tokens: int | None
    card: str | None
    history: HistoryLocation | None  # an SQLite file or a postgresql:// URL
    html: Path | None
    strict: bool
    label: str | None = None
    busy_guard: bool = True
    interleave: bool = True  # several models generate each repeat back to back
    markdown: Path | None = None  # the Markdown summary's file
    baseline: str | None = None
    retries: int = 3  # a served model's requests that failed before their first byte, tried again
    allow_estimated_counts: bool = False
    fail_on_model_mismatch: bool = False  # --mathperf-model-mismatch fail
    shard: tuple[int, int] | None = None  # K of N
    run_group: str | None = None
    server_pid: int | None = None  # the served model's process, sampled during load profiles
    answer_pass: PassSettings | None = None  # concurrency of the answers and the batch-1 latency sample

    def replaced_by(self, output: Path) -> str | None:
        """What of the run's inputs and records ``output`` would overwrite (the history, the budgets, a suite), or None."""
        from pytest_mathperf.suite import is_suite_file

        target = output.resolve()
        if self.history is not None and self.history.path is not None and self.history.path.resolve() == target:
            return "the history (--mathperf-history)"
        if self.thresholds.resolve() == target:
            return "the budgets file (--mathperf-thresholds)"
        for suites in self.suites:
            folder = suites.resolve()
            if is_suite_file(target) and (target == folder or folder in target.parents):
                return f"a suite file under {suites}"
        return None


STATE = pytest.StashKey[GateState]()
