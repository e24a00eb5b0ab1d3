"""Shards: one gate spread over several runners of one card, each running a share of the cases.

Every case is one unit for all models of the run, so a candidate and its baseline always meet
the same prompts in the same shard. The first shard of a group to start computes the shares
(balanced by each case's measured duration from the history when every case has one, else by
expected tokens) and records them in the history; every other shard of the group uses those, so
the shares are one assignment whatever the history held when each shard started.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
#: How many recent runs on the card are read for measured case durations.
DURATION_RUNS = 10
#: The CI variables a run group is taken from, in order, when ``--mathperf-run-group`` is not given.
#: Not the attempt: "re-run failed jobs" re-runs one shard under a new attempt, and the judge must
#: still find the shards that passed the first time (it takes each shard's newest complete run).
CI_GROUP_VARIABLES = ("GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILDKITE_BUILD_ID")


@dataclass(frozen=True)
class Shard:
    """This process's shard: ``index`` of ``count`` (1-based, as CI matrices count), in ``group``."""

    index: int
    count: int
    group: str

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Unit:
    """One case of the suites, run for every model: what a shard takes or leaves whole."""

    key: str  # "suite::case"
    expected_tokens: int  # max_new_tokens × repeats × models: the fallback weight


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 ≤ K ≤ N; ValueError with what would fix it."""
    match = SHARD_PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"expected K/N (this runner's shard of N, e.g. 2/3), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {index}/{count}: K must be between 1 and N")
    return index, count


def default_run_group(environ: Mapping[str, str] | None = None) -> str | None:
    """The CI run's identity, so the shards of one pipeline meet without being told."""
    environ = os.environ if environ is None else environ
    for variable in CI_GROUP_VARIABLES:
        if environ.get(variable):
            return f"{variable.lower()}-{environ[variable]}"
    return None


def unit_key(suite: str, case: str) -> str:
    return f"{suite}::{case}"


def balanced_shares(units: Iterable[Unit], count: int, durations: Mapping[str, float]) -> dict[str, int]:
    """Each unit's shard (1-based): longest first onto the least loaded shard, ties to the lower
    shard, so the same units and weights always give the same shares. Weights are the measured
    durations when every unit has one (a mix of seconds and tokens would compare nothing), else
    the expected tokens."""
    units = sorted(units, key=lambda unit: unit.key)
    measured = bool(units) and all(durations.get(unit.key, 0) > 0 for unit in units)
    weight = {unit.key: durations[unit.key] if measured else float(unit.expected_tokens) for unit in units}
    loads = [(0.0, shard) for shard in range(1, count + 1)]
    shares: dict[str, int] = {}
    for unit in sorted(units, key=lambda unit: (-weight[unit.key], unit.key)):
        load, shard = heapq.heappop(loads)
        shares[unit.key] = shard
        heapq.heappush(loads, (load + weight[unit.key], shard))
    return shares


def measured_durations(runs: Iterable[object], card: str) -> dict[str, float]:
    """Each case's end-to-end time summed over its generations and models, from the newest run on
    ``card`` that measured it (``runs`` newest first: RunRecords)."""
    durations: dict[str, float] = {}
    for run in runs:
        if run.environment.get("card") != card:  # type: ignore[attr-defined]
            continue
        found: dict[str, float] = {}
        for case in run.cases:  # type: ignore[attr-defined]
            key = unit_key(case.suite, case.case)
            found[key] = found.get(key, 0.0) + sum(case.samples("e2e_ms"))
        for key, value in found.items():
            durations.setdefault(key, value)
    return durations


def shares_text(shares: Mapping[str, int]) -> str:
    return json.dumps(dict(shares), sort_keys=True)


def shares_problem(group: str, claimed: tuple[int, Mapping[str, int]], shard: Shard, units: Iterable[str]) -> str | None:
    """Why this shard cannot take its share of the group's recorded shares (another N, other cases), or None."""
    count, shares = claimed
    if count != shard.count:
        return f"run group {group!r} was started with {count} shards, this one is {shard.name}: give each shard of a gate the same N"
    mine = set(units)
    missing = sorted(mine - set(shares))
    extra = sorted(set(shares) - mine)
    if missing or extra:
        differs = (missing or extra)[0]
        return (
            f"run group {group!r}: the first shard split other cases ({len(missing)} new here, {len(extra)} gone, e.g. "
            f"{differs}): every shard of a gate must run the same suites, selection (-k, -m) and commit"
        )
    return None


def sharded_workflow(template: str, install: str, suites: str, trigger_paths: tuple[str, ...], shards: int) -> str:
    """The matrix workflow of ``mathperf init --shards N``: one job per shard, then the judge."""
    values = {
        "@@INSTALL@@": install,
        "@@SUITES@@": suites,
        "@@PATHS@@": json.dumps(list(trigger_paths)),
        "@@SHARDS@@": str(shards),
        "@@SHARD_LIST@@": json.dumps(list(range(1, shards + 1))),
    }
    for token, value in values.items():
        template = template.replace(token, value)
    return template
