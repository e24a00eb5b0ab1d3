"""``mathperf judge``: one verdict for a sharded gate, from every shard's samples in the history.

The shards of a group are checked first (all there, complete, on one card, with the same model
revisions, suites, budgets and settings); then the gate itself runs once more with the shards'
records played back instead of a model (see ``replay``), so every budget and comparison is judged
by the gate's own code over the union, and the same surfaces (JUnit, Markdown, HTML) are written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pytest_mathperf.history import History, HistoryError, StoredRun
from pytest_mathperf.replay import GroupRecords
from pytest_mathperf.results import CaseRecord, ModelRecord
from pytest_mathperf.sharding import unit_key

#: What every shard of a group must have recorded alike, with the words a message uses.
SHARED_ENVIRONMENT = {
    "card": "card",
    "driver": "driver",
    "cuda": "CUDA",
    "torch": "torch",
    "transformers": "transformers",
    "pytest-mathperf": "pytest-mathperf",
    "math-verify": "math-verify",
    "shard_settings": "settings",
    "thresholds_fingerprint": "thresholds file",
}
MODEL_FIELDS = ("revision", "dtype", "device", "backend")


class GroupProblem(Exception):
    """The group cannot be judged: one line per problem, each naming the shard."""


@dataclass(frozen=True)
class GroupRun:
    """What ``mathperf judge`` found for a group: each shard's run and the settings they share."""

    group: str
    count: int
    shares: dict[str, int]
    runs: dict[int, StoredRun]  # shard index → its newest complete run
    settings: dict[str, object]


def read_group(history: History, group: str) -> GroupRun:
    """Every shard of ``group``, checked; GroupProblem naming each shard that is missing, partial or different."""
    claimed = history.group_shares(group)
    if claimed is None:
        raise GroupProblem(f"run group {group!r} is not in {history.path}: no shard recorded under it")
    count, shares = claimed
    problems: list[str] = []
    runs: dict[int, StoredRun] = {}
    for index in range(1, count + 1):
        if index not in shares.values():  # more shards than cases: this one ran nothing and recorded nothing
            continue
        mine = [run for run in history.group_runs(group) if run.record.environment.get("shard") == f"{index}/{count}"]
        complete = [run for run in mine if run.complete]
        if complete:
            runs[index] = complete[-1]
        elif mine:
            problems.append(f"shard {index}/{count} of run group {group!r}: run {mine[-1].run_id} is incomplete (killed mid-run, or still running)")
        else:
            problems.append(f"shard {index}/{count} of run group {group!r}: no run recorded in {history.path}")
    problems += _missing_cases(group, count, shares, runs) + _differences(group, count, runs)
    if problems:
        raise GroupProblem("\n".join(problems))
    first = runs[min(runs)].record.environment
    return GroupRun(group, count, shares, runs, json.loads(first.get("shard_settings", "{}")))


def _missing_cases(group: str, count: int, shares: dict[str, int], runs: dict[int, StoredRun]) -> list[str]:
    """A shard that finished without some case of its share on some model (a crash the run survived)."""
    recorded: dict[str, set[str]] = {}
    suite_models: dict[str, set[str]] = {}
    for run in runs.values():
        for case in run.record.cases:
            recorded.setdefault(unit_key(case.suite, case.case), set()).add(case.model)
            suite_models.setdefault(case.suite, set()).add(case.model)
    problems = []
    for index, run in sorted(runs.items()):
        lacking = []
        for unit in sorted(key for key, shard in shares.items() if shard == index):
            wanted = suite_models.get(unit.split("::", 1)[0]) or {"any model"}
            lacking += [f"{unit} on {model}" for model in sorted(wanted - recorded.get(unit, set()))]
        if lacking:
            problems.append(
                f"shard {index}/{count} of run group {group!r}: run {run.run_id} lacks {len(lacking)} of its cases "
                f"(e.g. {lacking[0]})"
            )
    return problems


def _differences(group: str, count: int, runs: dict[int, StoredRun]) -> list[str]:
    """Each shard that ran on another card, model revision, suite version or setting than the first one found."""
    if not runs:
        return []
    first_index = min(runs)
    first = runs[first_index].record
    problems = []
    for index, run in sorted(runs.items()):
        if index == first_index:
            continue
        differs = []
        environment = run.record.environment
        keys = {**SHARED_ENVIRONMENT, **{key: f"suite {key.split('.', 1)[1]}" for key in first.environment if key.startswith("suite_fingerprint.")}}
        for key, words in keys.items():
            if environment.get(key, "") != first.environment.get(key, ""):
                differs.append(f"{words} {environment.get(key, '')!r} (shard {first_index}/{count}: {first.environment.get(key, '')!r})")
        ours = {model.model: model for model in first.models}
        for model in run.record.models:
            for name in MODEL_FIELDS:
                if model.model in ours and getattr(model, name) != getattr(ours[model.model], name):
                    differs.append(f"{model.model} {name} {getattr(model, name)!r} (shard {first_index}/{count}: {getattr(ours[model.model], name)!r})")
        if differs:
            problems.append(f"shard {index}/{count} of run group {group!r} (run {run.run_id}) differs: " + "; ".join(differs))
    return problems


def union(found: GroupRun) -> GroupRecords:
    """The shards' cases together, and each model's figures merged over its shards."""
    cases: dict[tuple[str, str, str], CaseRecord] = {}
    per_model: dict[str, list[tuple[int, ModelRecord]]] = {}
    for index, run in sorted(found.runs.items()):
        for case in run.record.cases:
            cases[(case.model, case.suite, case.case)] = case
        for model in run.record.models:
            per_model.setdefault(model.model, []).append((index, model))
    first = found.runs[min(found.runs)].record.environment
    models = {model: merged_model(records, found.count) for model, records in per_model.items()}
    fingerprints = {key: value for key, value in first.items() if key.startswith("suite_fingerprint.") or key == "thresholds_fingerprint"}
    return GroupRecords(
        found.group, first.get("card", ""), first.get("device", ""), models, cases, frozenset(found.shares), fingerprints
    )


def merged_model(records: list[tuple[int, ModelRecord]], count: int) -> ModelRecord:
    """One model over its shards: each per-model figure (load time, memory peaks) is the worst
    shard's, and a busy host in any shard makes the union's timings busy."""
    metrics: dict[str, float] = {}
    for _, record in records:
        for name, value in record.metrics.items():
            metrics[name] = max(value, metrics.get(name, value))
    busy = "; ".join(f"shard {index}/{count}: {r.details['host_busy']}" for index, r in records if r.details.get("host_busy"))
    base = records[0][1]
    load_error = next((r.load_error for _, r in records if r.load_error), None)
    return replace(base, metrics=metrics, load_error=load_error, details={**base.details, "host_busy": busy})


def gate_arguments(found: GroupRun, records: GroupRecords) -> list[str]:
    """The options the shards ran with, so the gate judges the union as it would have judged one run."""
    settings = found.settings
    arguments = ["--mathperf", "--mathperf-no-history", "-p", "no:cacheprovider", "--mathperf-card", records.card]
    # this command imported the plugin before pytest could rewrite its asserts, which it has none of
    arguments += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    arguments += [f"--mathperf-model={model}" for model in settings.get("models", [])]
    arguments += [f"--mathperf-backend={settings.get('backend', 'hf')}", f"--mathperf-dtype={settings.get('dtype', 'auto')}"]
    arguments += [f"--mathperf-device={settings.get('device', 'auto')}"]
    arguments.append(f"--mathperf-busy-guard={'on' if settings.get('busy_guard', True) else 'off'}")
    if settings.get("baseline"):
        arguments.append(f"--mathperf-baseline={settings['baseline']}")
    if settings.get("allow_estimated_counts"):
        arguments.append("--mathperf-allow-estimated-counts")
    if settings.get("strict"):
        arguments.append("--mathperf-strict")
    return arguments


def judge_command(group: str, history_location: str, pytest_arguments: Sequence[str]) -> int:
    """Check the group, then run the gate over its records; the gate's exit status, or 1 naming what is wrong."""
    import pytest

    from pytest_mathperf.replay import ReplayPlugin

    try:
        with History(history_location) as history:
            found = read_group(history, group)
    except (GroupProblem, HistoryError) as error:
        for line in str(error).splitlines():
            print(f"mathperf judge: {line}", file=sys.stderr)
        return 1
    records = union(found)
    shards = ", ".join(f"{index}/{found.count}: run {run.run_id}" for index, run in sorted(found.runs.items()))
    print(f"mathperf judge: run group {group!r}, {found.count} shards ({shards}), {len(records.cases)} case records")
    return int(pytest.main([*gate_arguments(found, records), *pytest_arguments], plugins=[ReplayPlugin(records)]))

