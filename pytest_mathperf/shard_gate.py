"""The gate's side of shards: which items this process runs, what it leaves to the group's judge,
and what it records so that ``mathperf judge`` can check the shards belong together."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_mathperf.items import CaseItem, LoadItem, MathperfItem
from pytest_mathperf.sharding import (
    DURATION_RUNS,
    Shard,
    Unit,
    balanced_shares,
    default_run_group,
    measured_durations,
    parse_shard,
    shares_problem,
    unit_key,
)

if TYPE_CHECKING:
    from pytest_mathperf.state import GateState

#: What a shard run records under ``shard_settings``: the settings every shard of a group must share.
SHARED_SETTINGS = (
    "models", "backend", "baseline", "repeats", "warmup", "warmup_tokens", "dtype", "device", "busy_guard",
    "allow_estimated_counts", "strict",
)


def shard_setting(given: str | None, group: str | None, named: Callable[[str], str]) -> tuple[tuple[int, int] | None, str | None]:
    """``K/N`` and the run group it belongs to (the CI run's by default; required with a shard)."""
    if not given:
        return None, group or None
    try:
        shard = parse_shard(given)
    except ValueError as error:
        raise pytest.UsageError(f"{named('mathperf_shard')}: {error}") from None
    group = group or default_run_group()
    if not group or not str(group).strip():
        raise pytest.UsageError(
            f"{named('mathperf_shard')} needs --mathperf-run-group ID (the same for every shard of this gate; "
            "taken from GITHUB_RUN_ID or CI_PIPELINE_ID on CI)"
        )
    return shard, str(group).strip()


def check_shardable(state: GateState) -> None:
    """Refuse, before anything runs, what a shard cannot do: the reason in one line."""
    settings = state.settings
    if state.xdist_workers:
        raise pytest.UsageError("--mathperf-shard splits the cases over runners; run each shard in one process (-n 0)")
    if settings.history is None:
        raise pytest.UsageError("--mathperf-shard records into the group's history for `mathperf judge`: drop --mathperf-no-history")
    if settings.baseline == "blessed":
        raise pytest.UsageError("--mathperf-shard with --mathperf-baseline blessed is not supported: compare with a model of the run")
    thresholds = state.thresholds
    if thresholds is not None and thresholds.compare_settings.inconclusive == "more":
        raise pytest.UsageError(
            f"--mathperf-shard: {thresholds.path}: compare_defaults.inconclusive: more adds repeats once a comparison "
            "has looked, after the shards have finished; use pass or fail for a sharded gate"
        )


def unit_of(item: pytest.Item) -> str:
    return unit_key(item.suite.name, item.case.id)  # type: ignore[attr-defined]


def shard_units(state: GateState, items: list[pytest.Item]) -> dict[str, Unit]:
    """The selected cases as units (each for every model), with their expected tokens."""
    units: dict[str, Unit] = {}
    for item in items:
        if isinstance(item, LoadItem):
            raise pytest.UsageError(
                f"--mathperf-shard: suite {item.suite.name} has a load profile, which a shard cannot split; "
                "run load profiles in an unsharded job"
            )
        if isinstance(item, CaseItem):
            key = unit_of(item)
            tokens = item.case.max_new_tokens * state.runner.repeats_for(item.case)
            known = units.get(key)
            units[key] = Unit(key, tokens + (known.expected_tokens if known else 0))
    return units


def claim_share(state: GateState, shard: Shard, items: list[pytest.Item]) -> frozenset[str]:
    """This shard's cases: the group's shares as its first shard recorded them (computed here if this is it)."""
    from pytest_mathperf.history import History, HistoryError

    units = shard_units(state, items)
    assert state.settings.history is not None
    try:
        with History(state.settings.history) as history:
            claimed = history.group_shares(shard.group)
            if claimed is None:
                recent = history.run_ids(include_incomplete=False)[-DURATION_RUNS:]
                durations = measured_durations((history.run(run_id) for run_id in reversed(recent)), state.runner.card)
                claimed = history.claim_shares(shard.group, shard.count, balanced_shares(units.values(), shard.count, durations))
    except HistoryError as error:
        raise pytest.UsageError(f"--mathperf-history: {error}") from None
    problem = shares_problem(shard.group, claimed, shard, units)
    if problem is not None:
        raise pytest.UsageError(f"--mathperf-shard {shard.name}: {problem}")
    return frozenset(key for key, index in claimed[1].items() if index == shard.index)


def keep_share(config: pytest.Config, items: list[pytest.Item], share: frozenset[str]) -> list[pytest.Item]:
    """The items of ``share``; the others are reported deselected, as ``-k`` reports them."""
    kept = [item for item in items if not isinstance(item, CaseItem) or unit_of(item) in share]
    left = [item for item in items if isinstance(item, CaseItem) and unit_of(item) not in share]
    if left:
        config.hook.pytest_deselected(items=left)
    return kept


def leave_to_group(items: list[pytest.Item]) -> tuple[list[pytest.Item], list[str]]:
    """A shard runs its cases only: budgets and comparisons judge the union of every shard's
    samples, so they are left, by name, to ``mathperf judge``."""
    kept = [item for item in items if not isinstance(item, MathperfItem) or isinstance(item, (CaseItem, LoadItem))]
    left = [item.name for item in items if isinstance(item, MathperfItem) and not isinstance(item, (CaseItem, LoadItem))]
    return kept, left


def shard_environment(state: GateState) -> dict[str, str]:
    """What a shard records beside the environment: its group and place, and the settings the
    judge checks every shard shares and runs with."""
    from pytest_mathperf.context import file_fingerprint

    shard, settings = state.shard, state.settings
    assert shard is not None
    shared: dict[str, Any] = {name: getattr(settings, name) for name in SHARED_SETTINGS}
    shared["models"] = list(settings.models)
    thresholds = file_fingerprint([settings.thresholds]) if state.thresholds is not None else ""
    return {
        "run_group": shard.group,
        "shard": shard.name,
        "shard_settings": json.dumps(shared, sort_keys=True),
        "thresholds_fingerprint": thresholds,
    }


def group_summary(state: GateState, left: list[str]) -> str:
    shard = state.shard
    assert shard is not None
    return (
        f"mathperf: shard {shard.name} of run group {shard.group!r}: {len(state.share or ())} cases here; "
        f"{len(left)} budgets and comparisons are judged by the group: mathperf judge --run-group {shard.group}"
    )
