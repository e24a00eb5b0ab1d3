"""The shards' records played back through the gate, so ``mathperf judge`` judges a group with the
gate's own items, plan and judging functions: a case "runs" by returning what its shard recorded,
and every budget and comparison is judged over the union exactly as in one unsharded run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pytest

from pytest_mathperf.backends import LoadInfo, ModelLoadError
from pytest_mathperf.devices import DeviceInfo
from pytest_mathperf.results import CaseRecord, ModelRecord
from pytest_mathperf.runner import ModelSession, Runner, RunOptions
from pytest_mathperf.suite import Case, Suite

if TYPE_CHECKING:
    from pytest_mathperf.state import GateState


@dataclass(frozen=True)
class GroupRecords:
    """The union of a group's shards: every case record, each model merged over the shards."""

    group: str
    card: str
    device: str
    models: Mapping[str, ModelRecord]
    cases: Mapping[tuple[str, str, str], CaseRecord]  # (model, suite, case) → its record
    share: frozenset[str]  # every case the shards split ("suite::case")
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # suite_fingerprint.NAME and thresholds_fingerprint

    def runner(self, options: RunOptions) -> ReplayRunner:
        return ReplayRunner(options, self)


REPLAY = pytest.StashKey[GroupRecords]()


class ReplayPlugin:
    """Hands the group's records to the gate's ``pytest_configure`` (which runs after this one's)."""

    def __init__(self, records: GroupRecords) -> None:
        self.records = records

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[REPLAY] = self.records

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config) -> None:
        """The judge's suites and budgets must be the ones the shards ran: it judges by this checkout's files."""
        from pytest_mathperf.state import STATE

        problem = local_files_problem(config.stash[STATE], self.records.fingerprints)
        if problem is not None:
            raise pytest.UsageError(f"mathperf judge: {problem}")


@dataclass
class ReplayedSession(ModelSession):
    """A model as its shards recorded it: figures from the records, nothing loaded."""

    recorded_metrics: dict[str, float] = field(default_factory=dict)

    def model_metrics(self) -> dict[str, float]:
        return dict(self.recorded_metrics)


class ReplayRunner(Runner):
    """A runner whose cases were measured by the shards: same questions, recorded answers."""

    def __init__(self, options: RunOptions, records: GroupRecords) -> None:
        super().__init__(options)
        self.records = records
        self._device_info = DeviceInfo(device=records.device, card=records.card)
        for model in options.models:
            self.sessions[model] = _session(model, records.models.get(model))

    def session(self, model: str, *, beside_others: bool = False) -> ModelSession:
        session = self.sessions[model]
        if session.load_error is not None:
            raise ModelLoadError(session.load_error)
        return session

    def run_case(self, model: str, suite: Suite, case: Case, nodeid: str) -> CaseRecord:
        session = self.session(model)
        record = self.records.cases.get((model, suite.name, case.id))
        if record is None:  # the judge checked every shard's cases before this: a bug, with its traceback
            raise LookupError(f"no shard of group {self.records.group} recorded {suite.name}::{case.id} on {model}")
        record = replace(record, nodeid=nodeid)
        session.cases[(suite.name, case.id)] = record
        session.specs[(suite.name, case.id)] = (suite, case)
        return record

    def add_repeats(self, models: tuple[str, ...], key: tuple[str, str], total: int) -> None:
        raise RuntimeError("a sharded gate refuses compare_defaults.inconclusive: more before it runs")

    def model_record(self, model: str) -> ModelRecord:
        return self.records.models[model]

    def in_process(self, model: str) -> bool:
        record = self.records.models.get(model)
        return record is not None and record.device is not None

    def busy_reason(self, model: str) -> str | None:
        """Busy when any shard measured this model on a busy host, as the shards recorded it."""
        if not self.options.busy_guard or not self.sessions[model].cases or not self.in_process(model):
            return None
        return self.records.models[model].details.get("host_busy") or None

    def close(self) -> None:
        pass


def _session(model: str, record: ModelRecord | None) -> ReplayedSession:
    if record is None:
        return ReplayedSession(model, load_error=f"no shard recorded {model}")
    load_info = None
    if record.load_error is None:
        load_info = LoadInfo(
            model, record.source or "", record.revision, record.dtype or "", record.device,
            record.metrics.get("load_s", 0.0), dict(record.details),
        )
    return ReplayedSession(model, load_info=load_info, load_error=record.load_error, recorded_metrics=dict(record.metrics))


def local_files_problem(state: GateState, recorded: Mapping[str, str]) -> str | None:
    """Why this checkout's suites or thresholds file are not those the shards ran with, or None."""
    from pytest_mathperf.context import file_fingerprint

    advice = "check out the commit the shards ran"
    thresholds = recorded.get("thresholds_fingerprint", "")
    here = file_fingerprint([state.settings.thresholds]) if state.thresholds is not None else ""
    if here != thresholds:
        return f"{state.settings.thresholds} is not the budgets file the shards ran with ({here or 'none'} here, {thresholds or 'none'} there): {advice}"
    for key, fingerprint in sorted(recorded.items()):
        if key.startswith("suite_fingerprint."):
            suite = key.split(".", 1)[1]
            local = state.suite_fingerprints.get(suite, ("", 0))[0]
            if local != fingerprint:
                found = f"{local} here" if local else "not collected here"
                return f"suite {suite} is not the one the shards ran ({found}, {fingerprint} there): {advice}"
    return None
